//! Booleans as Prometheus reads them. Prometheus parses YAML 1.1, where
//! `yes`/`no`/`on`/`off` are booleans; serde_yaml follows YAML 1.2, where they
//! are strings. Accepting both keeps Prometheus configs loading unchanged.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// YAML 1.1 spellings of true and false.
const TRUE: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
];
const FALSE: &[&str] = &[
    "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
];

/// A boolean read from config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flag(pub(super) bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                if TRUE.contains(&v) {
                    Ok(Flag(true))
                } else if FALSE.contains(&v) {
                    Ok(Flag(false))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_1_1_booleans() {
        for (yaml, want) in [
            ("true", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("no", false),
            ("OFF", false),
        ] {
            let got: Flag = serde_yaml::from_str(yaml).expect(yaml);
            assert_eq!(got, Flag(want), "{yaml}");
        }
        for yaml in ["maybe", "1", "''"] {
            assert!(serde_yaml::from_str::<Flag>(yaml).is_err(), "{yaml}");
        }
    }
}
