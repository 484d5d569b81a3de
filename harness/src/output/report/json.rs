//! JSON: the whole [`Report`] as serde sees it, for scripts and dashboards.

use super::Exporter;
use crate::output::model::Report;

/// The report as pretty-printed JSON.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Exporter for Json {
    fn render(&self, report: &Report) -> String {
        // Report holds only strings, integers and finite floats, which serde_json always encodes.
        let mut s = serde_json::to_string_pretty(report).expect("a Report serializes to JSON");
        s.push('\n');
        s
    }
}
