//! Nemeses: the named faults and their seeded schedule.

use serde::Serialize;

/// A fault the harness can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Nemesis {
    /// SIGKILL the meta leader; restart it when the fault ends.
    KillMetaLeader,
    /// SIGKILL a meta follower; restart it when the fault ends.
    KillMetaFollower,
    /// SIGKILL a worker; restart it when the fault ends.
    KillWorker,
    /// SIGKILL the gateway; restart it when the fault ends.
    KillGateway,
    /// SIGSTOP a worker for longer than its lease (a zombie), then SIGCONT.
    PauseWorker,
    /// Cut a worker off from every meta node (proxy), then heal.
    PartitionWorker,
    /// Delay a worker's traffic to the meta group by 300 ms each way, then heal.
    SlowWorkerLink,
    /// The S3 server behind `backup_backup_dest` unreachable (connections dropped).
    S3Outage,
    /// 200 ms added to every chunk to and from the S3 server.
    S3Slow,
    /// The piece-copy destination's file system full (ENOSPC), then space again.
    DiskFull,
    /// The meta leader cut off from the other meta nodes (both ways), then healed.
    PartitionMetaLeader,
    /// A meta follower cut off from the other meta nodes (both ways), then healed.
    PartitionMetaFollower,
    /// A meta node that can send to its peers but hears nothing back from them
    /// (every link into it dropped): it times out, calls elections, disrupts.
    OneWayMeta,
    /// The S3 server answers every request with `503 SlowDown`.
    S3Errors,
    /// Answers from the S3 server cut after 1,500 bytes: reads end before their
    /// `Content-Length`.
    S3TruncatedReads,
    /// The meta leader's clock jumps 30–120 s back or forward (`meta::clock`
    /// failpoint), then returns: leader-assigned times must stay monotonic.
    ClockJump,
    /// A worker failpoint armed on every worker (the points in turn; crash, error or
    /// a 1.5 s stall, by the seed), with the statements that start work passing it;
    /// crashed workers restart when it is disarmed.
    Failpoint,
}

impl Nemesis {
    /// Every nemesis.
    pub const ALL: [Nemesis; 17] = [
        Nemesis::KillMetaLeader,
        Nemesis::KillMetaFollower,
        Nemesis::KillWorker,
        Nemesis::KillGateway,
        Nemesis::PauseWorker,
        Nemesis::PartitionWorker,
        Nemesis::SlowWorkerLink,
        Nemesis::S3Outage,
        Nemesis::S3Slow,
        Nemesis::DiskFull,
        Nemesis::PartitionMetaLeader,
        Nemesis::PartitionMetaFollower,
        Nemesis::OneWayMeta,
        Nemesis::S3Errors,
        Nemesis::S3TruncatedReads,
        Nemesis::ClockJump,
        Nemesis::Failpoint,
    ];

    /// Name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::KillMetaLeader => "kill-meta-leader",
            Nemesis::KillMetaFollower => "kill-meta-follower",
            Nemesis::KillWorker => "kill-worker",
            Nemesis::KillGateway => "kill-gateway",
            Nemesis::PauseWorker => "pause-worker",
            Nemesis::PartitionWorker => "partition-worker",
            Nemesis::SlowWorkerLink => "slow-worker-link",
            Nemesis::S3Outage => "s3-outage",
            Nemesis::S3Slow => "s3-slow",
            Nemesis::DiskFull => "disk-full",
            Nemesis::PartitionMetaLeader => "partition-meta-leader",
            Nemesis::PartitionMetaFollower => "partition-meta-follower",
            Nemesis::OneWayMeta => "one-way-meta",
            Nemesis::S3Errors => "s3-errors",
            Nemesis::S3TruncatedReads => "s3-truncated-reads",
            Nemesis::ClockJump => "clock-jump",
            Nemesis::Failpoint => "failpoint",
        }
    }

    /// Whether it needs the S3 server.
    pub fn needs_s3(self) -> bool {
        matches!(
            self,
            Nemesis::S3Outage | Nemesis::S3Slow | Nemesis::S3Errors | Nemesis::S3TruncatedReads
        )
    }
}

/// SplitMix64: a tiny deterministic generator, so a seed replays the same schedule
/// whatever the dependency versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Seconds into the run.
    pub at_s: f64,
    /// Which.
    pub nemesis: &'static str,
    /// Which process (index).
    pub target: usize,
    /// How long it lasted (s).
    pub held_s: f64,
    /// What exactly (a failpoint and its action, a clock shift), if more than the
    /// nemesis says.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}
