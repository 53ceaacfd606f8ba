//! The table of external programs the integration tests need (`tests/dependencies.txt`).
//!
//! This file is compiled into both the harness and `xtask` (via `#[path]`), so the table and
//! its reader exist once: xtask installs what it lists, the harness skips or fails on it.

/// The table's text, embedded at compile time so both users read the same version.
pub const TABLE: &str = include_str!("../dependencies.txt");

/// One external program a test may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    /// Absolute path of the binary the tests execute.
    pub binary: &'static str,
    /// Debian package that installs `binary`.
    pub package: &'static str,
    /// Service unit the package installs, which must not be left running.
    pub service: Option<&'static str>,
    /// Why the tests need it.
    pub purpose: &'static str,
}

/// Parses [`TABLE`]; a malformed line is reported with its number.
pub fn dependencies() -> Result<Vec<Dependency>, String> {
    parse(TABLE)
}

/// Parses a table in the format of `tests/dependencies.txt`.
pub fn parse(table: &'static str) -> Result<Vec<Dependency>, String> {
    let mut out = Vec::new();
    for (index, line) in table.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (binary, rest) = split_field(line);
        let (package, rest) = split_field(rest);
        let (service, purpose) = split_field(rest);
        if binary.is_empty() || package.is_empty() || service.is_empty() || purpose.is_empty() {
            return Err(format!(
                "dependencies.txt line {}: expected `binary package service purpose`",
                index + 1
            ));
        }
        let service = (service != "-").then_some(service);
        out.push(Dependency {
            binary,
            package,
            service,
            purpose,
        });
    }
    Ok(out)
}

/// Splits off the first whitespace-separated field and returns it with the trimmed rest.
fn split_field(line: &'static str) -> (&'static str, &'static str) {
    match line.find(char::is_whitespace) {
        Some(at) => (&line[..at], line[at..].trim_start()),
        None => (line, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_table_parses_and_names_absolute_binaries() {
        let deps = dependencies().expect("tests/dependencies.txt parses");
        assert!(deps.iter().any(|d| d.package == "prometheus"));
        for dep in deps {
            assert!(dep.binary.starts_with('/'), "{dep:?}");
        }
    }

    #[test]
    fn columns_split_on_any_whitespace_and_dash_means_no_service() {
        let deps =
            parse("# comment\n\n/usr/bin/x   pkg-x \t -   does   x things\n").expect("valid table");
        assert_eq!(
            deps,
            vec![Dependency {
                binary: "/usr/bin/x",
                package: "pkg-x",
                service: None,
                purpose: "does   x things",
            }]
        );
    }

    #[test]
    fn a_short_line_is_an_error_naming_the_line() {
        let err = parse("# c\n/usr/bin/x pkg\n").expect_err("missing columns");
        assert!(err.contains("line 2"), "{err}");
    }
}
