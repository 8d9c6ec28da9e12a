//! Where a run's time went: the stages of the path from files to
//! decisions, recorded in the report and printed as one table.

use reid_backbone::pipeline::Progress;
use reid_eval::report::Report;
use reid_pipeline::StageSeconds;

use crate::Embedded;

/// Records an embedding run in `report`: its wall time as `embed`, then
/// (indented under it) the cache, the wait for the background decoder
/// (the decoding the network did not hide) and the network.
pub fn record_embedding(report: &mut Report, run: &Embedded) {
    record_extraction(report, run.seconds, run.last.as_ref());
}

/// [`record_embedding`] from an extraction's wall time and last progress
/// report.
pub fn record_extraction(report: &mut Report, seconds: f64, last: Option<&Progress>) {
    report.timing("embed (decode + network)", seconds);
    let Some(p) = last else {
        return;
    };
    report.timing("  waiting for the decoder", p.decode_wait.as_secs_f64());
    report.timing("  network", p.network.as_secs_f64());
    if p.cache_time.as_secs_f64() > 0.0 {
        report.timing("  embedding cache", p.cache_time.as_secs_f64());
    }
}

/// Records an identification's stages in `report` under `name` (e.g.
/// `cosine` or `fusion B = 50`): the database work (projection, threshold
/// self-calibration, the fusion's calibration) and the queries' (search,
/// local matching, deciding), each part that took any time.
pub fn record_identification(report: &mut Report, name: &str, s: &StageSeconds) {
    let stages = [
        (
            "database",
            s.database,
            [
                ("projection fit", s.projection),
                ("threshold self-calibration", s.calibration),
                ("fusion calibration", s.fusion_calibration),
            ],
        ),
        (
            "queries",
            s.queries,
            [
                ("search", s.search),
                ("local matching", s.local),
                ("decide, name new animals", s.decide),
            ],
        ),
    ];
    for (stage, total, parts) in stages {
        report.timing(format!("{name}: {stage}"), total);
        for (part, secs) in parts {
            if secs > 0.0 {
                report.timing(format!("  {part}"), secs);
            }
        }
    }
}

/// Records a fused identification's own stages in `report` under `name`
/// (e.g. `fusion B = 50`): the fusion's calibration on database pairs,
/// and the queries' search, local matching and decisions (the projection
/// and the cosine threshold belong to the identification it re-ranks).
pub fn record_fusion(report: &mut Report, name: &str, s: &StageSeconds) {
    let own = StageSeconds {
        database: s.fusion_calibration,
        projection: 0.0,
        calibration: 0.0,
        ..*s
    };
    record_identification(report, name, &own);
}

/// The report's timings as a text table: stage, seconds, share of the
/// total (the last `total` entry, else their sum of top-level stages).
pub fn timing_table(report: &Report) -> String {
    let total = report
        .timings
        .iter()
        .rev()
        .find(|t| t.stage == "total")
        .map(|t| t.seconds)
        .unwrap_or_else(|| {
            report
                .timings
                .iter()
                .filter(|t| !t.stage.starts_with(' '))
                .map(|t| t.seconds)
                .sum()
        });
    let width = report
        .timings
        .iter()
        .map(|t| t.stage.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<width$}  {:>9}  {:>6}\n", "stage", "seconds", "share");
    for t in &report.timings {
        let share = if total > 0.0 {
            format!("{:5.1}%", 100.0 * t.seconds / total)
        } else {
            "-".to_string()
        };
        out.push_str(&format!(
            "{:<width$}  {:>9.3}  {:>6}\n",
            t.stage, t.seconds, share
        ));
    }
    out
}

/// The report's timings as a JSON list of `{"stage", "seconds"}` in order
/// (sub-stages keep their leading spaces trimmed and name their parent).
pub fn timings_json(report: &Report) -> serde_json::Value {
    let mut parent = String::new();
    let list = report
        .timings
        .iter()
        .map(|t| {
            let stage = if t.stage.starts_with(' ') {
                format!("{parent} / {}", t.stage.trim())
            } else {
                parent = t.stage.clone();
                t.stage.clone()
            };
            serde_json::json!({ "stage": stage, "seconds": t.seconds })
        })
        .collect();
    serde_json::Value::Array(list)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Sub-stages are indented in the table, share the total's
    /// denominator, and name their parent in the JSON.
    #[test]
    fn table_and_json_of_stages() {
        let mut r = Report::new("t");
        let s = StageSeconds {
            database: 3.0,
            queries: 1.0,
            calibration: 2.5,
            search: 0.25,
            decide: 0.75,
            ..StageSeconds::default()
        };
        record_identification(&mut r, "cosine", &s);
        r.timing("total", 8.0);
        let stages: Vec<&str> = r.timings.iter().map(|t| t.stage.as_str()).collect();
        assert_eq!(
            stages,
            [
                "cosine: database",
                "  threshold self-calibration",
                "cosine: queries",
                "  search",
                "  decide, name new animals",
                "total"
            ]
        );
        let table = timing_table(&r);
        // 3 of 8 seconds: 37.5 %; 0.25 of 8: 3.1 %.
        assert!(table.contains("cosine: database"), "{table}");
        assert!(table.contains(" 37.5%"), "{table}");
        assert!(table.contains("  3.1%"), "{table}");
        let json = timings_json(&r);
        assert_eq!(
            json[1]["stage"],
            "cosine: database / threshold self-calibration"
        );
        assert_eq!(json[1]["seconds"], 2.5);
        assert_eq!(
            json[4]["stage"],
            "cosine: queries / decide, name new animals"
        );
        assert_eq!(json[5]["stage"], "total");
        // A fusion's own stages leave out the cosine identification's.
        let mut f = Report::new("f");
        let fused = StageSeconds {
            database: 10.0,
            fusion_calibration: 6.0,
            local: 0.5,
            ..s
        };
        record_fusion(&mut f, "fusion B = 50", &fused);
        let got: Vec<(&str, f64)> = f
            .timings
            .iter()
            .map(|t| (t.stage.as_str(), t.seconds))
            .collect();
        assert_eq!(
            got,
            [
                ("fusion B = 50: database", 6.0),
                ("  fusion calibration", 6.0),
                ("fusion B = 50: queries", 1.0),
                ("  search", 0.25),
                ("  local matching", 0.5),
                ("  decide, name new animals", 0.75)
            ]
        );
        // Without a total, the top-level stages make it: 4 s, of which 1 s
        // of queries is 25 %.
        r.timings.pop();
        assert!(timing_table(&r).contains(" 25.0%"));
    }
}
