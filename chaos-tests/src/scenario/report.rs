//! The run's report: operations, verdicts, `report.json` and the printed table.

use serde::Serialize;

use super::nemesis::Fault;

/// One operation of the workload.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    /// Seconds into the run.
    pub at_s: f64,
    /// Statement or call.
    pub what: String,
    /// Acknowledged (`ok`) or the error.
    pub result: String,
    /// Wall clock when it returned (ms since the epoch).
    pub returned_ms: u64,
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Invariant.
    pub invariant: &'static str,
    /// Held.
    pub ok: bool,
    /// What was checked, or what broke.
    pub detail: String,
}

/// What a run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Seconds of faults.
    pub duration_s: u64,
    /// Faults injected.
    pub faults: Vec<Fault>,
    /// Operations.
    pub operations: Vec<Operation>,
    /// Invariants.
    pub invariants: Vec<Verdict>,
    /// Seconds from healing to a quiet cluster.
    pub settle_s: f64,
    /// Failpoints that fired, with counts (from the processes' logs).
    pub failpoints_hit: std::collections::BTreeMap<String, u64>,
    /// Seconds of the whole run.
    pub total_s: f64,
}

impl Report {
    /// Every invariant held.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|v| v.ok)
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "scenario {} seed {} ({} s of faults, {} faults, {} operations, settled in {:.1} s, {:.0} s in all)\n",
            self.scenario,
            self.seed,
            self.duration_s,
            self.faults.len(),
            self.operations.len(),
            self.settle_s,
            self.total_s
        );
        if !self.failpoints_hit.is_empty() {
            let hits: Vec<String> = self
                .failpoints_hit
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect();
            s.push_str(&format!("  failpoints fired: {}\n", hits.join(", ")));
        }
        for v in &self.invariants {
            s.push_str(&format!(
                "  {:<28} {:<4} {}\n",
                v.invariant,
                if v.ok { "ok" } else { "FAIL" },
                v.detail
            ));
        }
        s
    }
}
