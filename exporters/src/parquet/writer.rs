//! Local staging: the open file of each signal (its [staging log](super::wal) plus the Parquet
//! file being written beside it), when it rolls, how it is finished, and how the logs a crash
//! left behind become files again.
//!
//! Directory layout under `agent.data_dir/parquet/<exporter>/`:
//! - `open/<signal>-<nanos>-<rand>.wal` and `….parquet.partial`: an open file. The log is the
//!   durable part; the partial Parquet file is only a cache of work and is thrown away after a
//!   crash.
//! - `outbox/<id>.parquet` + `outbox/<id>.json`: a finished file and its object name, waiting
//!   for upload. The JSON is written last (temp file, rename, directory fsync), so an entry is
//!   complete once it exists.
//!
//! Finishing a file: close the Parquet writer (footer, with the schema version and file id in
//! its metadata) → fsync → move it to the outbox → write the JSON → remove the log. A crash at
//! any point leaves either the log (rebuilt on start, same id, same name) or a complete outbox
//! entry (uploaded on start), or both (the log is then dropped).
//!
//! Everything here is blocking file I/O and CPU work: callers run it on the blocking pool.

use super::convert::{self, ConvertError};
use super::naming::{self, Civil, NameParts};
use super::schema::{self, META_FILE_ID, META_HOST, META_SCHEMA_VERSION, META_SIGNAL, META_WRITER};
use super::wal::{AppendError, Header, WalReader, WalWriter};
use arrow_array::RecordBatch;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use sonde_config::{ParquetCompression, ParquetConfig};
use sonde_core::fs::{sync_dir, write_atomic};
use sonde_core::Signal;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the staging area needs to know, fixed at build time.
#[derive(Debug, Clone)]
pub struct Settings {
    pub exporter: String,
    pub template: String,
    pub host: String,
    pub max_file_size: u64,
    pub max_file_age: Duration,
    /// A file rolls early once its log and Parquet bytes pass this (half of `max_staged_size`).
    pub max_open_bytes: u64,
    pub row_group_size: usize,
    pub row_group_rows: usize,
    pub compression: Compression,
    pub open_dir: PathBuf,
    pub outbox_dir: PathBuf,
}

/// zstd level when the configuration names none. Level 2 takes about 7% less CPU per span than
/// level 3 for files 0.5% larger, and level 1 a further 3% less for 2% larger (BENCHMARKS.md,
/// Parquet exporter): for an agent, CPU on the host it watches is the scarcer of the two.
const DEFAULT_ZSTD_LEVEL: i32 = 2;

impl Settings {
    pub fn new(
        name: &str,
        cfg: &ParquetConfig,
        root: &Path,
    ) -> Result<Settings, parquet::errors::ParquetError> {
        let compression = match cfg.compression {
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(
                cfg.compression_level.unwrap_or(DEFAULT_ZSTD_LEVEL),
            )?),
            ParquetCompression::Gzip => Compression::GZIP(GzipLevel::try_new(
                cfg.compression_level.unwrap_or(6).max(0) as u32,
            )?),
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Lz4 => Compression::LZ4_RAW,
            ParquetCompression::None => Compression::UNCOMPRESSED,
        };
        Ok(Settings {
            exporter: name.to_string(),
            template: cfg.path.clone(),
            host: cfg
                .host
                .as_deref()
                .map(naming::sanitize)
                .unwrap_or_else(naming::local_host),
            max_file_size: cfg.max_file_size.get(),
            max_file_age: cfg.max_file_age.get(),
            max_open_bytes: cfg.max_staged_size.get() / 2,
            row_group_size: cfg.row_group_size.as_usize(),
            row_group_rows: cfg.row_group_rows.max(1),
            compression,
            open_dir: root.join("open"),
            outbox_dir: root.join("outbox"),
        })
    }

    /// Writer properties for a signal's files: the codec, row-group limits, dictionary
    /// encoding everywhere except on columns of unique or near-unique values, and min/max
    /// statistics (chunk and page level, the page index) on every column except the key and
    /// value leaves of the attribute maps.
    ///
    /// Why no statistics on attribute maps: their leaves hold every key and value of every
    /// attribute of every row, mixed (`http.route` next to `client.address`), so a min/max over
    /// them prunes nothing — a reader filtering on `attributes['k'] = 'v'` has to read the
    /// pages anyway — while computing them (two byte comparisons per value, per leaf) was about
    /// a third of the Parquet encoding time of spans (BENCHMARKS.md, "Parquet exporter").
    pub fn properties(&self, signal: Signal) -> WriterProperties {
        let mut b = WriterProperties::builder()
            .set_compression(self.compression)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_max_row_group_bytes(Some(self.row_group_size.max(1)))
            .set_created_by(format!("sonde {}", env!("CARGO_PKG_VERSION")))
            .set_dictionary_enabled(true);
        let unique: &[&str] = match signal {
            Signal::Traces => &[
                "trace_id",
                "span_id",
                "parent_span_id",
                "start_time",
                "end_time",
                "duration_ns",
            ],
            Signal::Logs => &["time", "observed_time", "trace_id", "span_id"],
            Signal::Metrics => &["time", "value_double"],
        };
        for c in unique {
            b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
        }
        // Times of neighbouring rows are close: delta encoding stores the small differences.
        let times: &[&str] = match signal {
            Signal::Traces => &["start_time", "end_time"],
            Signal::Logs => &["time", "observed_time"],
            Signal::Metrics => &["time", "start_time"],
        };
        for c in times {
            b = b
                .set_column_dictionary_enabled(ColumnPath::from(*c), false)
                .set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED);
        }
        for path in attribute_map_leaves(signal) {
            b = b.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
        b.build()
    }
}

/// The Parquet paths of the key and value leaves of every attribute map of `signal`'s schema
/// (top-level and nested in events, links, exemplars): the leaves below a map's `key_value`
/// group.
fn attribute_map_leaves(signal: Signal) -> Vec<ColumnPath> {
    // The schema is ours and always converts; if it ever did not, the writer would refuse it
    // first, so no leaves (all statistics kept) is a safe answer here.
    let Ok(descr) = ArrowSchemaConverter::new().convert(&schema::schema(signal)) else {
        return Vec::new();
    };
    descr
        .columns()
        .iter()
        .map(|c| c.path())
        .filter(|p| p.parts().iter().any(|part| part == "key_value"))
        .cloned()
        .collect()
}

/// A finished file waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub id: String,
    pub signal: Signal,
    /// Object name below the store's prefix.
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub opened_unix_nanos: i64,
}

impl Finished {
    pub fn parquet_path(&self, outbox: &Path) -> PathBuf {
        outbox.join(format!("{}.parquet", self.id))
    }
    pub fn json_path(&self, outbox: &Path) -> PathBuf {
        outbox.join(format!("{}.json", self.id))
    }
}

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("Parquet writer: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StageError + 'a {
    move |source| StageError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

pub fn now_unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The Parquet file being written while a file is open.
type Pq = ArrowWriter<BufWriter<File>>;

/// One signal's open file.
pub struct OpenFile {
    pub signal: Signal,
    wal: WalWriter,
    /// `None` once a write to it failed: the file is then rebuilt from the log when finished.
    parquet: Option<Pq>,
    partial: PathBuf,
    opened_unix_nanos: i64,
    opened_at: Instant,
    hour: (i64, u32, u32, u32),
    pub rows: u64,
    /// Hashes of the batches it holds, to recognise a batch delivered twice.
    pub seen: HashSet<u128>,
}

impl OpenFile {
    pub fn create(s: &Settings, signal: Signal) -> Result<OpenFile, StageError> {
        let opened_unix_nanos = now_unix_nanos();
        let stem = format!(
            "{}-{}-{:08x}",
            signal.as_str(),
            opened_unix_nanos,
            rand::random::<u32>()
        );
        let wal_path = s.open_dir.join(format!("{stem}.wal"));
        let partial = s.open_dir.join(format!("{stem}.parquet.partial"));
        let header = Header {
            signal,
            opened_unix_nanos,
            host: s.host.clone(),
        };
        let wal = WalWriter::create(&wal_path, &header)
            .map_err(io_err("cannot create the staging log", &wal_path))?;
        let parquet = match new_parquet(s, signal, &partial) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(exporter = %s.exporter, error = %e, "cannot open the Parquet file; it will be built from the staging log when finished");
                None
            }
        };
        Ok(OpenFile {
            signal,
            wal,
            parquet,
            partial,
            opened_unix_nanos,
            opened_at: Instant::now(),
            hour: Civil::of_unix_nanos(opened_unix_nanos).hour_key(),
            rows: 0,
            seen: HashSet::new(),
        })
    }

    /// Makes `payload` durable in the log, then adds its rows to the Parquet file. `Ok` means
    /// the batch is kept (it survives a crash). A failed Parquet write is not an error: the
    /// file is rebuilt from the log when finished.
    pub fn append(
        &mut self,
        s: &Settings,
        payload: &[u8],
        rows: &RecordBatch,
    ) -> Result<(), AppendError> {
        self.wal.append(payload)?;
        self.rows += rows.num_rows() as u64;
        if let Some(pq) = self.parquet.as_mut() {
            if let Err(e) = pq.write(rows) {
                tracing::warn!(exporter = %s.exporter, error = %e, "Parquet write failed; the file will be rebuilt from its staging log");
                self.parquet = None;
            }
        }
        Ok(())
    }

    pub fn wal_path(&self) -> &Path {
        self.wal.path()
    }

    /// Parquet bytes so far: written row groups plus the one being built.
    pub fn parquet_size(&self) -> u64 {
        self.parquet
            .as_ref()
            .map_or(0, |p| (p.bytes_written() + p.in_progress_size()) as u64)
    }

    /// Local bytes this open file uses (log + Parquet).
    pub fn staged_bytes(&self) -> u64 {
        self.wal.len() + self.parquet_size()
    }

    /// Why this file should be finished now, if it should.
    pub fn roll_reason(&self, s: &Settings, now_unix_nanos: i64) -> Option<&'static str> {
        if self.parquet.is_none() && self.rows > 0 {
            return Some("writer_failed");
        }
        if self.parquet_size() >= s.max_file_size {
            return Some("size");
        }
        if self.staged_bytes() >= s.max_open_bytes {
            return Some("staging_size");
        }
        if self.opened_at.elapsed() >= s.max_file_age {
            return Some("age");
        }
        if Civil::of_unix_nanos(now_unix_nanos).hour_key() != self.hour {
            return Some("hour");
        }
        None
    }

    /// Finishes the file into the outbox and removes its log.
    pub fn finish(self, s: &Settings) -> Result<Finished, StageError> {
        let id = self.wal.id();
        let wal_path = self.wal.path().to_path_buf();
        let header = Header {
            signal: self.signal,
            opened_unix_nanos: self.opened_unix_nanos,
            host: s.host.clone(),
        };
        let rows = match self.parquet {
            Some(mut pq) => {
                add_metadata(&mut pq, &header, &id);
                let file = pq.into_inner()?;
                let file = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .map_err(io_err("cannot write", &self.partial))?;
                file.sync_all()
                    .map_err(io_err("cannot fsync", &self.partial))?;
                self.rows
            }
            None => {
                drop(self.wal);
                let mut reader = WalReader::open(&wal_path)
                    .map_err(io_err("cannot read the staging log", &wal_path))?;
                rebuild(s, &mut reader, &self.partial)?
            }
        };
        publish(s, &header, &id, rows, &self.partial, &wal_path)
    }
}

fn new_parquet(s: &Settings, signal: Signal, path: &Path) -> Result<Pq, StageError> {
    let file = File::create(path).map_err(io_err("cannot create", path))?;
    Ok(ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        schema::schema(signal),
        Some(s.properties(signal)),
    )?)
}

fn add_metadata(pq: &mut Pq, h: &Header, id: &str) {
    for (k, v) in [
        (META_SCHEMA_VERSION, schema::SCHEMA_VERSION.to_string()),
        (META_SIGNAL, h.signal.as_str().to_string()),
        (META_FILE_ID, id.to_string()),
        (META_HOST, h.host.clone()),
        (META_WRITER, format!("sonde {}", env!("CARGO_PKG_VERSION"))),
    ] {
        pq.append_key_value_metadata(KeyValue::new(k.to_string(), v));
    }
}

/// Writes a fresh Parquet file at `partial` from every good record of a log.
fn rebuild(s: &Settings, reader: &mut WalReader, partial: &Path) -> Result<u64, StageError> {
    let signal = reader.header.signal;
    let mut pq = new_parquet(s, signal, partial)?;
    let mut rows = 0u64;
    while let Some(payload) = reader.next_payload() {
        match convert::convert(signal, &payload) {
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                pq.write(&batch)?;
            }
            // Only decodable batches are logged; a record that no longer decodes is skipped.
            Err(e) => {
                tracing::error!(exporter = %s.exporter, error = %e, "a staged batch no longer decodes; skipped")
            }
        }
    }
    add_metadata(&mut pq, &reader.header, &reader.id());
    let file = pq.into_inner()?;
    let file = file
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_err("cannot write", partial))?;
    file.sync_all().map_err(io_err("cannot fsync", partial))?;
    Ok(rows)
}

/// Moves a finished Parquet file into the outbox under its id, records its object name, and
/// removes its log — in the order that keeps a crash harmless.
fn publish(
    s: &Settings,
    h: &Header,
    id: &str,
    rows: u64,
    parquet: &Path,
    wal_path: &Path,
) -> Result<Finished, StageError> {
    let key = naming::render(
        &s.template,
        &NameParts {
            signal: h.signal,
            opened_unix_nanos: h.opened_unix_nanos,
            host: &h.host,
            exporter: &s.exporter,
            id,
        },
    );
    let bytes = std::fs::metadata(parquet)
        .map_err(io_err("cannot stat", parquet))?
        .len();
    let f = Finished {
        id: id.to_string(),
        signal: h.signal,
        key,
        rows,
        bytes,
        opened_unix_nanos: h.opened_unix_nanos,
    };
    let dest = f.parquet_path(&s.outbox_dir);
    std::fs::rename(parquet, &dest).map_err(io_err("cannot move into the outbox", &dest))?;
    let json = f.json_path(&s.outbox_dir);
    let text = serde_json::to_vec(&f).unwrap_or_default();
    write_atomic(&json, &text, true).map_err(io_err("cannot record the outbox entry", &json))?;
    std::fs::remove_file(wal_path).map_err(io_err("cannot remove the staging log", wal_path))?;
    let _ = sync_dir(&s.open_dir);
    Ok(f)
}

/// What recovery found in the staging directory at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Logs turned into finished files.
    pub rebuilt: u64,
    /// Logs whose file had already been finished (the crash came after that).
    pub already_finished: u64,
    /// Bytes of torn or damaged log tails dropped.
    pub dropped_bytes: u64,
    /// Logs that could not be read at all (left in place, renamed `.bad`).
    pub unreadable: u64,
}

/// Creates the staging directories and lists the logs a previous run left open.
pub fn prepare(s: &Settings) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(&s.open_dir)?;
    std::fs::create_dir_all(&s.outbox_dir)?;
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(&s.open_dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("wal") => logs.push(path),
            // A Parquet file whose log is gone or will be rebuilt: work that is redone.
            Some("partial") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    for entry in std::fs::read_dir(&s.outbox_dir)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if ext == Some("tmp") {
            let _ = std::fs::remove_file(&path);
        }
    }
    logs.sort();
    Ok(logs)
}

/// Turns one log left by a previous run into a finished file (or drops it when its file was
/// already finished). Returns the entry to upload, if a new one was made.
pub fn recover(
    s: &Settings,
    wal_path: &Path,
    report: &mut Recovery,
) -> Result<Option<Finished>, StageError> {
    let mut reader = match WalReader::open(wal_path) {
        Ok(r) => r,
        Err(e) => {
            report.unreadable += 1;
            tracing::error!(exporter = %s.exporter, path = %wal_path.display(), error = %e, "unreadable staging log set aside");
            let _ = std::fs::rename(wal_path, wal_path.with_extension("wal.bad"));
            return Ok(None);
        }
    };
    // Read to the end first: the id covers every good record.
    let partial = wal_path.with_extension("parquet.partial");
    let rows = rebuild(s, &mut reader, &partial)?;
    report.dropped_bytes += reader.dropped_bytes();
    let id = reader.id();
    let header = reader.header.clone();
    drop(reader);
    let json = s.outbox_dir.join(format!("{id}.json"));
    if json.exists() {
        report.already_finished += 1;
        let _ = std::fs::remove_file(&partial);
        std::fs::remove_file(wal_path)
            .map_err(io_err("cannot remove the staging log", wal_path))?;
        return Ok(None);
    }
    if rows == 0 {
        // A log with a header and nothing else: nothing to publish.
        let _ = std::fs::remove_file(&partial);
        std::fs::remove_file(wal_path)
            .map_err(io_err("cannot remove the staging log", wal_path))?;
        return Ok(None);
    }
    report.rebuilt += 1;
    publish(s, &header, &id, rows, &partial, wal_path).map(Some)
}

/// Finished files waiting in the outbox, oldest first. Entries whose Parquet file is missing
/// (uploaded and removed just before a crash) are cleaned up.
pub fn outbox(s: &Settings) -> io::Result<Vec<Finished>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&s.outbox_dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Finished>(&b).ok());
        match parsed {
            Some(f) if f.parquet_path(&s.outbox_dir).exists() => out.push(f),
            Some(_) => {
                let _ = std::fs::remove_file(&path);
            }
            None => {
                tracing::error!(exporter = %s.exporter, path = %path.display(), "unreadable outbox entry set aside");
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
            }
        }
    }
    out.sort_by_key(|f| (f.opened_unix_nanos, f.id.clone()));
    Ok(out)
}

/// Removes an uploaded file from the outbox (Parquet first: an entry without its file is
/// recognised as done).
pub fn remove_uploaded(s: &Settings, f: &Finished) -> io::Result<()> {
    std::fs::remove_file(f.parquet_path(&s.outbox_dir))?;
    std::fs::remove_file(f.json_path(&s.outbox_dir))?;
    Ok(())
}

/// Bytes of finished files waiting in the outbox.
pub fn outbox_bytes(s: &Settings) -> u64 {
    outbox(s)
        .map(|v| v.iter().map(|f| f.bytes).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod properties_tests {
    use super::*;
    use crate::parquet::testdata;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use prost::Message;

    /// Writes the fixture rows with the exporter's properties; returns, per column path, whether
    /// its chunk carries statistics, min/max statistics, and a page index.
    fn stats_by_column(signal: Signal, payload: &[u8]) -> Vec<(String, bool, bool, bool)> {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new("t", &ParquetConfig::default(), dir.path()).unwrap();
        let mut w = ArrowWriter::try_new(
            Vec::new(),
            schema::schema(signal),
            Some(settings.properties(signal)),
        )
        .unwrap();
        w.write(&convert::convert(signal, payload).unwrap())
            .unwrap();
        let bytes = bytes::Bytes::from(w.into_inner().unwrap());
        let reader = SerializedFileReader::new(bytes).unwrap();
        let rg = reader.metadata().row_group(0);
        rg.columns()
            .iter()
            .map(|c| {
                (
                    c.column_path().string(),
                    c.statistics().is_some(),
                    c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()),
                    c.column_index_offset().is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn attribute_maps_carry_no_statistics_and_other_columns_keep_theirs() {
        for (signal, payload) in [
            (Signal::Traces, testdata::traces().encode_to_vec()),
            (Signal::Logs, testdata::logs().encode_to_vec()),
            (Signal::Metrics, testdata::metrics().encode_to_vec()),
        ] {
            let cols = stats_by_column(signal, &payload);
            let get = |name: &str| {
                cols.iter()
                    .find(|c| c.0 == name)
                    .unwrap_or_else(|| panic!("{signal}: no column {name}"))
            };
            assert!(get("service_name").2, "{signal}");
            assert!(get("service_name").3, "{signal}");
            assert!(!get("resource_attributes.key_value.value").1, "{signal}");
            assert!(!get("resource_attributes_int.key_value.key").1, "{signal}");
            assert!(!get("attributes.key_value.value").1, "{signal}");
            let maps = cols.iter().filter(|c| c.0.contains(".key_value.")).count();
            assert!(maps >= 16, "{signal}: {maps} map leaves");
            for c in &cols {
                assert_eq!(c.1, !c.0.contains(".key_value."), "{signal}: {}", c.0);
            }
        }
        let spans = stats_by_column(Signal::Traces, &testdata::traces().encode_to_vec());
        assert!(spans.iter().any(|c| c.0 == "start_time" && c.2 && c.3));
        assert!(spans.iter().any(|c| c.0 == "name" && c.2 && c.3));
    }
}
