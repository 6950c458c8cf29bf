//! A listening address that can be turned off (`"127.0.0.1:13133"` or `"off"`), written the same
//! way wherever the agent listens: the admin server and the `otlp` source's listeners.
//!
//! Only what the text means; binding the address is the agent's job.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A listening address that can be turned off: `"127.0.0.1:13133"` or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(a) => Some(a),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" | "" => Ok(Listen::Off),
            a => a.parse().map(Listen::At).map_err(|e| {
                format!("invalid address `{a}` ({e}); expected e.g. \"127.0.0.1:13133\" or \"off\"")
            }),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Listen::Off => s.serialize_str("off"),
            Listen::At(a) => s.collect_str(a),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address such as \"127.0.0.1:13133\", \"off\" or false")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Listen, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Listen, E> {
                if v {
                    Err(E::custom(
                        "`true` is not an address; write one, e.g. \"127.0.0.1:13133\"",
                    ))
                } else {
                    Ok(Listen::Off)
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Socket addresses are written as strings (`"127.0.0.1:4317"`).
pub type Addr = SocketAddr;
