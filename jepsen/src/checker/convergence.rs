//! Multi-region convergence: the interface of a checker that plugs in with global tables.
//!
//! **Status: interface only — future work.** Ferrodyn records a hybrid-logical-clock version and
//! an origin region on every item, but does not replicate across regions yet. This module fixes
//! the shape of the inputs and of the checker so the `global` workload and its checker can be
//! added without changing [`Checker`] or [`CheckInput`]. [`Convergence::check`] currently returns
//! [`CheckError::NotImplemented`] (an unknown verdict, exit code 2) — it never claims validity.
//!
//! # Property
//!
//! After faults stop and cross-region replication drains, every region holds identical contents,
//! and for every key that content is the **last-writer-wins winner** of the history: the write
//! with the greatest [`Version`] `(hlc, region)`.
//!
//! # Inputs the harness must provide
//!
//! 1. **The history**, with register-style `write` operations (see [`crate::workload`]) whose
//!    `ok` completion value also carries the version the write was stored with:
//!    `{"key": K, "value": V, "hlc": H, "region": R}` (parse with [`version_of`]). Indeterminate
//!    writes carry no version: they may or may not be present, with a version unknown to the
//!    client. Written values are unique.
//! 2. **Final per-region snapshots** ([`RegionSnapshot`]), one per region, each a full scan of
//!    the table through that region's endpoint with the stored version of every item, taken after
//!    the nemesis stopped, the cluster healed and replication drained (the harness waits until
//!    replication lag reports zero, or until successive scans agree). Passed with
//!    [`CheckInput::with_region_snapshots`].
//!
//! # Planned algorithm
//!
//! 1. **Agreement**: all snapshots hold the same keys with the same values and versions; each
//!    difference is an [`AnomalyKind::Divergence`](super::AnomalyKind::Divergence) naming the regions and key.
//! 2. **LWW winner per key**: let `A` be the acknowledged writes of the key and `m` the greatest
//!    version among them. The converged item must
//!    - have a version `>= m` (an older one means an acknowledged write was lost);
//!    - if its version is exactly that of an acknowledged write, hold that write's value;
//!    - otherwise (a newer version) hold the value of an indeterminate write of that key — the
//!      only writes whose versions the client never learned.
//! 3. Keys acknowledged but absent from every snapshot are lost; items whose value no write
//!    attempted are unexpected. Deletes (tombstones) need a rule once global tables define them.
//!
//! Stats to report: keys, regions, divergent keys, lost keys, winners from indeterminate writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CheckError, CheckInput, CheckResult, Checker};

/// A stored version: hybrid-logical-clock timestamp, then origin region as the tie-breaker.
/// The derived order (`hlc` first, then `region`) is the last-writer-wins order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// HLC timestamp (`physical ms << 16 | logical`).
    pub hlc: u64,
    /// The region where the write was accepted.
    pub region: String,
}

/// One item of a region snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotItem {
    /// The register value held.
    pub value: Value,
    /// Its stored version.
    pub version: Version,
}

/// A region's final contents, read after faults stopped and replication drained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionSnapshot {
    /// The region's name.
    pub region: String,
    /// When the scan started, on the history's clock (ns).
    pub taken_at: u64,
    /// Key → item.
    pub items: BTreeMap<String, SnapshotItem>,
}

/// The version carried by an `ok` write's completion value (`"hlc"` and `"region"` fields), if
/// any.
pub fn version_of(value: &Value) -> Option<Version> {
    Some(Version {
        hlc: value.get("hlc")?.as_u64()?,
        region: value.get("region")?.as_str()?.to_string(),
    })
}

/// The multi-region convergence checker (name `"convergence"`). **Not implemented yet**: see
/// the module docs for the planned algorithm.
#[derive(Clone, Debug, Default)]
pub struct Convergence;

impl Checker for Convergence {
    fn name(&self) -> &str {
        "convergence"
    }

    /// Fails with [`CheckError::MissingInput`] without region snapshots, and with
    /// [`CheckError::NotImplemented`] otherwise (future work), so the verdict is unknown.
    fn check(&self, input: &CheckInput<'_>) -> Result<CheckResult, CheckError> {
        if input.region_snapshots.is_none() {
            return Err(CheckError::MissingInput(
                "final per-region snapshots (CheckInput::with_region_snapshots)".into(),
            ));
        }
        Err(CheckError::NotImplemented(
            "multi-region convergence arrives with global tables".into(),
        ))
    }
}
