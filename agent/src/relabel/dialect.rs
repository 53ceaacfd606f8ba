//! Go RE2 syntax → Rust `regex` syntax, for the few places they disagree.
//!
//! Both are RE2 dialects with leftmost-first matching, but Rust's Perl
//! classes are Unicode-aware where Go's are ASCII-only, Rust has no `\Q…\E`,
//! and inside `[...]` Rust gives `[`, `&&` and `~~` set-operation meanings
//! that Go treats as literal text. Rewriting the pattern once at compile time
//! keeps matching identical to Prometheus on non-ASCII input.

/// Go's ASCII-only Perl classes, as class bodies.
const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = "\\t\\n\\f\\r ";

/// Rewrites a Go RE2 pattern so Rust's `regex` matches the same strings.
/// Invalid patterns stay invalid (the Rust compiler reports them).
pub(crate) fn from_go(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\'); // trailing backslash: let the compiler reject it
                    break;
                };
                match (e, in_class) {
                    ('d', false) => push_class(&mut out, false, DIGIT),
                    ('D', _) => push_class(&mut out, true, DIGIT),
                    ('w', false) => push_class(&mut out, false, WORD),
                    ('W', _) => push_class(&mut out, true, WORD),
                    ('s', false) => push_class(&mut out, false, SPACE),
                    ('S', _) => push_class(&mut out, true, SPACE),
                    ('d', true) => out.push_str(DIGIT),
                    ('w', true) => out.push_str(WORD),
                    ('s', true) => out.push_str(SPACE),
                    ('b', false) => out.push_str("(?-u:\\b)"),
                    ('B', false) => out.push_str("(?-u:\\B)"),
                    ('Q', false) => {
                        // Literal text up to `\E` (or the end).
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            out.push_str(&regex::escape(q.encode_utf8(&mut [0; 4])));
                        }
                    }
                    (e, _) => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                // A `]` right after `[` or `[^` is a literal in both dialects.
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
            }
            '[' if chars.peek() == Some(&':')
                && chars.clone().skip(1).collect::<String>().contains(":]") =>
            {
                // POSIX class such as `[:alpha:]` (Go looks for the next `:]`,
                // as we do): copy through `:]`.
                out.push_str("[:");
                chars.next();
                let mut prev = '\0';
                for p in chars.by_ref() {
                    out.push(p);
                    if prev == ':' && p == ']' {
                        break;
                    }
                    prev = p;
                }
            }
            // Literal in Go classes; nesting/set operators in Rust's.
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

fn push_class(out: &mut String, negated: bool, body: &str) {
    out.push_str(if negated { "[^" } else { "[" });
    out.push_str(body);
    out.push(']');
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod tests {
    use regex::Regex;

    use super::from_go;

    fn go_match(pattern: &str, hay: &str) -> bool {
        Regex::new(&format!("^(?s:{})$", from_go(pattern)))
            .unwrap()
            .is_match(hay)
    }

    #[test]
    fn rewrites() {
        let table = [
            (r"\d+", r"[0-9]+"),
            (r"[\d.]", r"[0-9.]"),
            (r"[^\D]", r"[^[^0-9]]"),
            (r"\w\W", r"[0-9A-Za-z_][^0-9A-Za-z_]"),
            (r"\s\S", r"[\t\n\f\r ][^\t\n\f\r ]"),
            (r"\bx\B", r"(?-u:\b)x(?-u:\B)"),
            (r"\Qa.b\E.", r"a\.b."),
            (r"\Q*", r"\*"),
            (r"[]a]", r"[\]a]"),
            (r"[^]a]", r"[^\]a]"),
            (r"[[:alpha:]_]", r"[[:alpha:]_]"),
            (r"[a[b]", r"[a\[b]"),
            (r"[[:a]", r"[\[:a]"),
            (r"[a&&b~~c]", r"[a\&\&b\~\~c]"),
            (r"a\.b\\d", r"a\.b\\d"),
            (r"\pL\p{Greek}", r"\pL\p{Greek}"),
            ("(.*)", "(.*)"),
        ];
        for (go, rust) in table {
            assert_eq!(from_go(go), rust, "{go}");
        }
    }

    #[test]
    fn matches_like_go() {
        // (Go pattern, haystack, Go's answer)
        let table = [
            (r"\d+", "123", true),
            (r"\d+", "١٢٣", false), // Arabic-Indic digits are not \d in Go
            (r"\w+", "héllo", false),
            (r"\w+", "hello_1", true),
            (r"\s", "\u{a0}", false),
            (r"\s", "\t", true),
            (r".*\bb", "é b", true),
            (r"a\b.*", "aé", true), // é is not an ASCII word char, so a boundary
            (r"a\B.*", "aé", false),
            (r"\Q(a)\E", "(a)", true),
            (r"[a[]+", "a[a", true),
            (r"[a&&b]+", "a&b", true),
            (r"[^\D]+", "42", true),
            (r"[[:a]+", ":[a", true),
            (r"[[:digit:]x]+", "1x", true),
        ];
        for (pattern, hay, want) in table {
            assert_eq!(go_match(pattern, hay), want, "{pattern} on {hay:?}");
        }
    }

    #[test]
    fn invalid_stays_invalid() {
        for bad in ["(", r"\", "[a", "a{2,1}"] {
            assert!(Regex::new(&from_go(bad)).is_err(), "{bad}");
        }
    }
}
