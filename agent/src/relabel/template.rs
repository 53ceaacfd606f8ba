//! `$`-templates with Go's `Regexp.Expand` rules, parsed once against their regex.
//!
//! We do not use `regex::Captures::expand`: it differs from Go on `$01`
//! (Go: the group *named* "01", i.e. empty; Rust: group 1), on `${a-b}` (Go:
//! literal text; Rust: a missing group) and on non-ASCII letters after `$`.
//! Parsing once also resolves names to group indexes, so expansion is a copy loop.

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Box<str>),
    Group(usize),
}

/// A parsed template: literal text and capture-group references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Box<[Piece]>,
}

impl Template {
    /// Parses `template` against `regex` (whose group names and count resolve
    /// references; a reference to a group that does not exist expands to "").
    pub(crate) fn parse(template: &str, regex: &Regex) -> Self {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                literal.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = extract(rest) else {
                // Malformed reference: Go keeps the `$` as text.
                literal.push('$');
                continue;
            };
            rest = after;
            let group = match group_number(name) {
                Some(n) => (n < regex.captures_len()).then_some(n),
                None => regex.capture_names().position(|n| n == Some(name)),
            };
            if let Some(group) = group {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                }
                pieces.push(Piece::Group(group));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        Self {
            pieces: pieces.into(),
        }
    }

    /// True when expansion reads capture groups (so a match must capture them).
    pub(crate) fn uses_groups(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Group(_)))
    }

    /// Appends the expansion to `dst`; `group(i)` is the text of group `i`, or
    /// `None` when it did not participate in the match.
    pub(crate) fn expand_into<'h>(
        &self,
        group: impl Fn(usize) -> Option<&'h str>,
        dst: &mut String,
    ) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => dst.push_str(s),
                Piece::Group(i) => dst.push_str(group(*i).unwrap_or("")),
            }
        }
    }
}

/// Lets a [`Template`] drive `Regex::replace_all` (Go's `ReplaceAllString`).
pub(crate) struct Replace<'t>(pub(crate) &'t Template);

impl regex::Replacer for Replace<'_> {
    fn replace_append(&mut self, caps: &regex::Captures<'_>, dst: &mut String) {
        self.0.expand_into(|i| caps.get(i).map(|m| m.as_str()), dst);
    }
}

/// Go's name characters: letters, digits and `_`. For non-ASCII, Rust's
/// Alphabetic/Numeric properties stand in for Go's L/Nd categories (they
/// differ only on rare marks and numeric symbols).
fn is_name_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Go's `extract`: the name after a `$`, as `name` or `{name}`, and the rest.
fn extract(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let end = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    if end == 0 {
        return None;
    }
    let (name, rest) = body.split_at(end);
    if braced {
        return rest.strip_prefix('}').map(|rest| (name, rest));
    }
    Some((name, rest))
}

/// Go's group-number rule: ASCII digits only, no leading zero, below 1e8.
fn group_number(name: &str) -> Option<usize> {
    if name.len() > 8 || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    if !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Legacy check for a `replace` target or `labelmap` replacement containing
/// `$`: Prometheus' `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$` (ASCII `\w`),
/// i.e. word characters and `$` references, not starting with a digit.
pub(crate) fn is_valid_name_template(s: &str) -> bool {
    fn word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }
    let b = s.as_bytes();
    if b.first().is_none_or(u8::is_ascii_digit) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            i += 1;
            let braced = b.get(i) == Some(&b'{');
            if braced {
                i += 1;
            }
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            if braced {
                if b.get(i) != Some(&b'}') {
                    return false;
                }
                i += 1;
            }
        } else if word(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod tests {
    use super::*;

    fn expand(re: &str, template: &str, hay: &str) -> String {
        let re = Regex::new(&format!("^(?s:{re})$")).unwrap();
        let t = Template::parse(template, &re);
        let caps = re.captures(hay).unwrap();
        let mut out = String::new();
        t.expand_into(|i| caps.get(i).map(|m| m.as_str()), &mut out);
        out
    }

    #[test]
    fn go_expand_rules() {
        let re = "(a)(b)?(?P<x>c)";
        // (template, expected) for the haystack "ac", following Go's Regexp.Expand.
        let table = [
            ("$1", "a"),
            ("${1}", "a"),
            ("$1x", ""), // group named "1x": does not exist
            ("${1}x", "ax"),
            ("$2", ""),  // group that did not participate
            ("$9", ""),  // group that does not exist
            ("$01", ""), // leading zero: a name, not a number
            ("$x", "c"),
            ("${x}", "c"),
            ("$x_", ""),
            ("$$1", "$1"),
            ("$", "$"),       // malformed: literal
            ("a$-b", "a$-b"), // malformed: literal
            ("${1", "${1"),   // unclosed brace: literal
            ("${a-b}", "${a-b}"),
            ("${}", "${}"),
            ("$0", "ac"),
            ("[$1|${x}]", "[a|c]"),
            ("$999999999", ""),
        ];
        for (template, want) in table {
            assert_eq!(expand(re, template, "ac"), want, "template {template:?}");
        }
    }

    #[test]
    fn literal_templates_use_no_groups() {
        let re = Regex::new("^(?s:(.*))$").unwrap();
        assert!(!Template::parse("counter", &re).uses_groups());
        assert!(!Template::parse("a$$b", &re).uses_groups());
        assert!(!Template::parse("$7", &re).uses_groups());
        assert!(Template::parse("x${1}", &re).uses_groups());
    }

    #[test]
    fn legacy_name_templates() {
        for ok in [
            "${1}",
            "$1",
            "a_$1",
            "label1_${1}",
            "_${x}y",
            "$a$b",
            "${3}",
        ] {
            assert!(is_valid_name_template(ok), "{ok:?}");
        }
        for bad in [
            "",
            "0${3}",
            "-${3}",
            "utf-8.label${1}",
            "a$",
            "${}",
            "${1",
            "$-",
            "a b$1",
        ] {
            assert!(!is_valid_name_template(bad), "{bad:?}");
        }
    }
}
