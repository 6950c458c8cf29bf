//! `[processors.<name>]`: the settings of each processor type, one file each. A processor names
//! its `inputs` (sources or other processors) like an exporter does; what it passes on goes to
//! the exporters and processors that name it. Plain data and checks; the processors themselves
//! live in `agent/src/processors/`.

pub mod filter;
pub mod redact;
pub mod resource;
pub mod sample;
