//! The raw, inert `relabel_config` exactly as Prometheus YAML spells it.

use serde::{Deserialize, Deserializer};

/// One `relabel_config` exactly as written in Prometheus YAML. Omitted fields
/// take Prometheus' defaults when compiled by [`super::Rules::compile`].
///
/// `None` means "omitted". A YAML null (`regex:` with no value) counts as the
/// empty string, because Prometheus' YAML decoder sets null fields to Go's
/// zero value: `regex: ~` is the empty pattern, not the default `(.*)`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default, deserialize_with = "null_as_empty_list")]
    pub source_labels: Vec<String>,
    /// Separator for the joined input (default `;`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub separator: Option<String>,
    /// RE2-style regex, anchored at both ends (default `(.*)`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub regex: Option<String>,
    /// Modulus for `hashmod`.
    pub modulus: Option<u64>,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`, compared by `keepequal`/`dropequal`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub target_label: Option<String>,
    /// Replacement with `$1`/`${name}` expansion (default `$1`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub replacement: Option<String>,
    /// The action (default `replace`), case-insensitive.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub action: Option<String>,
}

/// A present-but-null string field is the empty string (Go's zero value).
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

/// A present-but-null list is the empty list (Go's nil slice).
fn null_as_empty_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<RelabelConfig>, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    #[test]
    fn prometheus_yaml_parses_every_field() {
        let got = parse(
            r#"
- source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_pod_name]
  separator: "/"
  regex: "(.+)/(.+)"
  target_label: pod
  replacement: "${1}-$2"
  action: Replace
- source_labels: [__address__]
  modulus: 4
  target_label: __tmp_hash
  action: hashmod
- action: labelmap
  regex: __meta_kubernetes_pod_label_(.+)
"#,
        )
        .unwrap();
        assert_eq!(
            got[0],
            RelabelConfig {
                source_labels: vec![
                    "__meta_kubernetes_namespace".into(),
                    "__meta_kubernetes_pod_name".into()
                ],
                separator: Some("/".into()),
                regex: Some("(.+)/(.+)".into()),
                modulus: None,
                target_label: Some("pod".into()),
                replacement: Some("${1}-$2".into()),
                action: Some("Replace".into()),
            }
        );
        assert_eq!(got[1].modulus, Some(4));
        assert_eq!(
            got[1].regex, None,
            "omitted regex stays None so the default applies"
        );
        assert_eq!(got[2].source_labels, Vec::<String>::new());
        assert_eq!(got[2].replacement, None);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse("- source_labels: [a]\n  target: b\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `target`"), "{err}");
        // A classic typo: the singular form of source_labels.
        assert!(parse("- source_label: [a]\n  target_label: b\n").is_err());
    }

    #[test]
    fn empty_and_null_values_differ_from_omitted() {
        let got = parse("- regex: \"\"\n  replacement: \"\"\n  separator: ''\n").unwrap();
        assert_eq!(got[0].regex.as_deref(), Some(""));
        assert_eq!(got[0].replacement.as_deref(), Some(""));
        assert_eq!(got[0].separator.as_deref(), Some(""));
        let got =
            parse("- regex:\n  replacement: ~\n  source_labels: ~\n  action: null\n").unwrap();
        assert_eq!(got[0].regex.as_deref(), Some(""));
        assert_eq!(got[0].replacement.as_deref(), Some(""));
        assert_eq!(got[0].action.as_deref(), Some(""));
        assert!(got[0].source_labels.is_empty());
    }

    #[test]
    fn scalar_types_are_checked() {
        assert!(parse("- modulus: -1\n").is_err());
        assert!(parse("- modulus: many\n").is_err());
        assert!(parse("- source_labels: a\n").is_err());
    }
}
