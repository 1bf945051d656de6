//! A sandbox test run as a person, a program or a CI server reads it.

use std::fmt::Write;

use super::harness::{Outcome, Report, Step};

/// The run for a terminal: one line per step, and under a failed step its
/// reason, the requests the host sent and what the connector calls cost.
/// `verbose` shows requests and costs under every step.
pub fn text(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let connector = report
        .connector
        .as_ref()
        .map(|c| format!("{c} (contract {})", c.contract))
        .unwrap_or_else(|| "the connector".into());
    let _ = writeln!(out, "{connector} against {}", report.application);
    let _ = writeln!(out, "run {}\n", report.run_id);
    for step in &report.steps {
        let mark = step.outcome.label();
        let _ = writeln!(
            out,
            "{mark}  {:<26} {:>6} ms  {}",
            step.name, step.millis, step.purpose
        );
        if let Some(reason) = &step.reason {
            let _ = writeln!(out, "      why: {reason}");
        }
        for note in &step.notes {
            let _ = writeln!(out, "      {note}");
        }
        if verbose || step.outcome == Outcome::Fail {
            details(&mut out, step);
        }
    }
    let _ = writeln!(
        out,
        "\n{} steps: {} passed, {} failed, {} skipped",
        report.steps.len(),
        report.count(Outcome::Pass),
        report.count(Outcome::Fail),
        report.count(Outcome::Skip)
    );
    out
}

fn details(out: &mut String, step: &Step) {
    for request in &step.requests {
        let _ = writeln!(out, "      > {}", request.line());
    }
    for call in &step.calls {
        let _ = writeln!(
            out,
            "      $ {:<15} {:>7} µs  {:>11} fuel  {:>6} KiB peak  {:>6} B out",
            call.call,
            call.wall_time.as_micros(),
            call.fuel
                .map(|f| f.to_string())
                .unwrap_or_else(|| "-".into()),
            call.peak_memory_bytes >> 10,
            call.output_bytes
        );
    }
}

/// The run as JSON (the report's own shape).
pub fn json(report: &Report) -> String {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("passed".into(), report.passed().into());
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The run as a JUnit XML test suite: one test case per step.
pub fn junit(report: &Report) -> String {
    let name = report
        .connector
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "connector".into());
    let seconds: f64 = report.steps.iter().map(|s| s.millis as f64 / 1000.0).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{seconds:.3}\">",
        escape(&format!("scimlink plugin test: {name}")),
        report.steps.len(),
        report.count(Outcome::Fail),
        report.count(Outcome::Skip)
    );
    for step in &report.steps {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(&name),
            escape(step.name),
            step.millis as f64 / 1000.0
        );
        let reason = escape(step.reason.as_deref().unwrap_or(""));
        match step.outcome {
            Outcome::Pass => out.push_str("/>\n"),
            Outcome::Skip => {
                let _ = writeln!(out, ">\n    <skipped message=\"{reason}\"/>\n  </testcase>");
            }
            Outcome::Fail => {
                let mut body = String::new();
                details(&mut body, step);
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{reason}\">{}</failure>\n  </testcase>",
                    escape(&body)
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{fffd}"
        );
    }
}
