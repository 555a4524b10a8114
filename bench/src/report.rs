//! The figures of one run: every value per side and round, their medians and spreads, the ratio table and JSON.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            median,
            min: *sorted.first().unwrap_or(&f64::NAN),
            max: *sorted.last().unwrap_or(&f64::NAN),
            values: values.to_vec(),
        }
    }
}

/// One measured quantity; the first side is this service, the others its peers in the same run.
#[derive(Debug, Clone)]
pub struct Figure {
    pub id: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub sides: Vec<(String, Vec<f64>)>,
}

#[derive(Debug, Default)]
pub struct Results {
    figures: Vec<Figure>,
    raw: Vec<Value>,
    warnings: Vec<String>,
}

impl Results {
    /// Adds one value (one round) to a side of a figure, creating either on first use.
    pub fn add(&mut self, id: &str, label: &str, unit: &str, better: Better, side: &str, value: f64) {
        let index = match self.figures.iter().position(|f| f.id == id) {
            Some(i) => i,
            None => {
                let figure = Figure { id: id.into(), label: label.into(), unit: unit.into(), better, sides: vec![] };
                self.figures.push(figure);
                self.figures.len() - 1
            }
        };
        let sides = &mut self.figures[index].sides;
        match sides.iter_mut().find(|(name, _)| name == side) {
            Some((_, values)) => values.push(value),
            None => sides.push((side.into(), vec![value])),
        }
    }

    /// Keeps a raw measurement (a load report, a transfer) for the JSON file.
    pub fn raw(&mut self, case: &str, side: &str, round: usize, data: impl Serialize) {
        let data = serde_json::to_value(data).unwrap_or(Value::Null);
        self.raw.push(json!({ "case": case, "side": side, "round": round, "data": data }));
    }

    /// Something that makes a figure doubtful (errors under load); printed after the table, kept in the JSON.
    pub fn warn(&mut self, warning: String) {
        eprintln!("warning: {warning}");
        self.warnings.push(warning);
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn to_json(&self, machine: Value, settings: Value) -> Value {
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                let sides: serde_json::Map<String, Value> =
                    f.sides.iter().map(|(name, v)| (name.clone(), json!(Spread::of(v)))).collect();
                let ratios: serde_json::Map<String, Value> =
                    ratios(f).into_iter().map(|(peer, r)| (format!("{}/{peer}", f.sides[0].0), json!(r))).collect();
                json!({ "id": f.id, "label": f.label, "unit": f.unit, "better": f.better, "sides": sides, "ratios": ratios })
            })
            .collect();
        json!({ "machine": machine, "settings": settings, "figures": figures, "warnings": self.warnings, "raw": self.raw })
    }

    /// A Markdown table: one row per figure and peer, medians with their min-max spread, ours / peer.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| figure | ours: median (min-max) | peer | peer: median (min-max) | ours / peer |\n");
        out.push_str("|---|---|---|---|---|\n");
        for f in &self.figures {
            let (ours_name, ours) = &f.sides[0];
            let ours = format!("{} {}: {}", ours_name, f.unit, spread_text(&Spread::of(ours)));
            let arrow = if f.better == Better::Higher { "higher is better" } else { "lower is better" };
            if f.sides.len() == 1 {
                let _ = writeln!(out, "| {} ({arrow}) | {ours} | — | — | — |", f.label);
            }
            for ((peer, values), (_, ratio)) in f.sides.iter().skip(1).zip(ratios(f)) {
                let peer_text = spread_text(&Spread::of(values));
                let _ = writeln!(out, "| {} ({arrow}) | {ours} | {peer} | {peer_text} | {ratio:.2} |", f.label);
            }
        }
        out
    }
}

/// Ours / each peer, on the medians.
fn ratios(f: &Figure) -> Vec<(String, f64)> {
    let ours = Spread::of(&f.sides[0].1).median;
    f.sides.iter().skip(1).map(|(peer, v)| (peer.clone(), ours / Spread::of(v).median)).collect()
}

fn spread_text(s: &Spread) -> String {
    let digits = |v: f64| {
        if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else if v.abs() >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    if s.values.len() > 1 {
        format!("{} ({}-{})", digits(s.median), digits(s.min), digits(s.max))
    } else {
        digits(s.median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_spreads_and_ratios() {
        let mut r = Results::default();
        for (ours, peer) in [(10.0, 5.0), (30.0, 5.0), (20.0, 10.0)] {
            r.add("x", "presign", "req/s", Better::Higher, "api", ours);
            r.add("x", "presign", "req/s", Better::Higher, "companion", peer);
        }
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        let table = r.table();
        assert!(
            table.contains(
                "| presign (higher is better) | api req/s: 20.0 (10.0-30.0) | companion | 5.00 (5.00-10.0) | 4.00 |"
            ),
            "{table}"
        );
        let json = r.to_json(json!({}), json!({}));
        assert_eq!(json["figures"][0]["ratios"]["api/companion"], 4.0);
    }
}
