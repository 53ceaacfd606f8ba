//! Adds up what the test runners report, so `cargo xtask test` can end on one line that
//! counts every test it ran (doctests and nextest together), after its timing table.

/// Totals over every runner summary seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestCounts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed or timed out.
    pub failed: u64,
    /// Tests skipped or ignored.
    pub skipped: u64,
}

impl TestCounts {
    /// Reads one output line; only runner summary lines count:
    /// cargo test's `test result: ok. 3 passed; 0 failed; 1 ignored; …` and nextest's
    /// `Summary [ 1.2s] 4 tests run: 3 passed, 1 failed, 2 skipped`.
    pub fn observe(&mut self, line: &str) {
        // cargo test prints its result at column 0; indented copies are a failed test's
        // captured output echoed by nextest, already counted in nextest's summary.
        let summary = if let Some(rest) = line.strip_prefix("test result:") {
            rest
        } else if line.trim_start().starts_with("Summary [") {
            match line
                .split_once("tests run:")
                .or_else(|| line.split_once("test run:"))
            {
                Some((_, rest)) => rest,
                None => return,
            }
        } else {
            return;
        };
        let words: Vec<&str> = summary
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| !word.is_empty())
            .collect();
        for pair in words.windows(2) {
            let Ok(count) = pair[0].parse::<u64>() else {
                continue;
            };
            match pair[1] {
                "passed" => self.passed += count,
                "failed" | "timed" => self.failed += count,
                "skipped" | "ignored" => self.skipped += count,
                _ => {}
            }
        }
    }

    /// `tests: N passed, N failed, N skipped`: the plain closing line CI reads.
    pub fn closing_line(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cargo_test_and_nextest_summaries_and_ignores_other_lines() {
        let mut counts = TestCounts::default();
        for line in [
            "test result: ok. 16 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.03s",
            "test passed_test_named_passed ... ok",
            "   Doc-tests crowsnest_tests",
            "     Summary [   5.545s] 29 tests run: 27 passed, 1 failed, 1 timed out, 3 skipped",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
            "    test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 3 filtered out",
        ] {
            counts.observe(line);
        }
        assert_eq!(
            counts,
            TestCounts {
                passed: 44,
                failed: 3,
                skipped: 5
            }
        );
        assert_eq!(
            counts.closing_line(),
            "tests: 44 passed, 3 failed, 5 skipped"
        );
    }
}
