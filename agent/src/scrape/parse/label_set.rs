//! A standalone label set such as `{a="b", c="d"}`, read with the same
//! label grammar as series (used by `crowsnest debug relabel`).

use super::error::ParseError;
use super::labels::{Mode, Src, parse_label_set as parse_block, unexpected};
use super::lex::skip_blanks;

/// Reads `{name="value", ...}` (text-format leniency: blanks and a trailing
/// comma allowed; `__name__` may be given as a label). Errors carry the
/// column of the offending byte on line 1.
pub fn parse_label_set(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let body = text.as_bytes();
    let fail = |(pos, reason): (usize, super::Reason)| ParseError::new(1, pos + 1, reason);
    let start = skip_blanks(body, 0);
    if body.get(start) != Some(&b'{') {
        return Err(fail(unexpected(body, start, "'{'")));
    }
    let mut labels = Vec::new();
    let mut name = None;
    let end = parse_block(
        Src::new(body),
        start + 1,
        Mode {
            strict: false,
            exemplar: false,
            name_label: true,
        },
        &mut labels,
        &mut name,
    )
    .map_err(fail)?;
    let end = skip_blanks(body, end);
    if end != body.len() {
        return Err(fail(unexpected(body, end, "end of input")));
    }
    let mut out: Vec<(String, String)> = labels
        .into_iter()
        .map(|l| (l.name.into_owned(), l.value.into_owned()))
        .collect();
    // A quoted first element is the metric name in the UTF-8 syntax.
    if let Some(n) = name {
        out.push(("__name__".to_owned(), n.into_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_with_escapes() {
        let got = parse_label_set(r#" { a="b", c="x\"y\n" , } "#).expect("valid");
        assert_eq!(
            got,
            [("a".into(), "b".into()), ("c".into(), "x\"y\n".into())]
        );
        assert_eq!(parse_label_set("{}").expect("empty"), []);
        let named = parse_label_set(r#"{__name__="up"}"#).expect("__name__ as a label");
        assert_eq!(named, [("__name__".into(), "up".into())]);
        assert!(
            parse_label_set(r#"{a="1",a="2"}"#).is_err(),
            "duplicates are refused"
        );
    }

    #[test]
    fn errors_name_the_column() {
        let e =
            parse_label_set(r#"{a="b" c}"#).expect_err("missing comma is fine, missing = is not");
        assert_eq!(e.line(), 1);
        assert!(e.column() >= 8, "{e}");
        assert!(parse_label_set("a=\"b\"").is_err());
        assert!(parse_label_set("{a=\"b\"} x").is_err());
    }
}
