//! YAML maps that refuse duplicate keys, as Prometheus' strict YAML loading
//! does; serde's own maps keep the last value silently.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// A `name: value` map read from config, sorted by name, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct UniqueMap<V>(pub(super) BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = BTreeMap::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(de::Error::custom(format!(
                            "key {key:?} appears twice: keep one of them"
                        )));
                    }
                    let value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueMap(map))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates() {
        let ok: UniqueMap<String> = serde_yaml::from_str("b: 1\na: x\n").expect("map");
        assert_eq!(
            ok.0.into_iter().collect::<Vec<_>>(),
            [("a".into(), "x".into()), ("b".into(), "1".into())]
        );
        let err = serde_yaml::from_str::<UniqueMap<String>>("a: 1\na: 2\n").expect_err("duplicate");
        assert!(err.to_string().contains("key \"a\" appears twice"), "{err}");
    }
}
