//! Which credential each RPC needs: the one table of the rule, for every RPC of every silk
//! service. An RPC missing from [`RULES`] is refused (`UNIMPLEMENTED`) before it reaches a
//! service, and `tests/services/auth_rules.rs` fails until it has a row.

/// The credential an RPC needs (see `docs/deploy.md`, "What each credential lets its holder
/// do").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The cluster token: RPCs only storage, the scheduler and execution managers make.
    Service,
    /// The admin token: creating resource groups.
    Admin,
    /// A group token. The service then checks that the job (or the group named in the
    /// request) is that token's group; a job of another group and a job that does not exist
    /// get the same `PERMISSION_DENIED`.
    Group,
    /// A group token (the answer covers that group only) or the admin token (every group).
    GroupOrAdmin,
    /// No bearer credential: the request carries the resource group's secret, which storage
    /// checks with argon2 under a bounded number of concurrent hashes. Creating a group on
    /// first open still needs the admin token.
    Secret,
}

const STORAGE: &str = "/silk.storage.v1.";
const SCHEDULER: &str = "/silk.scheduler.v1.";

/// Every RPC (service and method as in the `.proto` files) with its rule.
pub const RULES: &[(&str, &str, &str, Rule)] = &[
    (STORAGE, "JobOrchestration", "RegisterJob", Rule::Group),
    (
        STORAGE,
        "JobOrchestration",
        "RegisterJobStream",
        Rule::Group,
    ),
    (STORAGE, "JobOrchestration", "StartJob", Rule::Group),
    (STORAGE, "JobOrchestration", "CancelJob", Rule::Group),
    (STORAGE, "JobOrchestration", "GetJobState", Rule::Group),
    (STORAGE, "JobOrchestration", "GetJobOutputs", Rule::Group),
    (STORAGE, "JobOrchestration", "GetJobError", Rule::Group),
    (STORAGE, "JobOrchestration", "WatchJob", Rule::Group),
    (STORAGE, "JobOrchestration", "ListJobs", Rule::GroupOrAdmin),
    (STORAGE, "ResourceGroups", "AddResourceGroup", Rule::Admin),
    (STORAGE, "ResourceGroups", "OpenResourceGroup", Rule::Secret),
    (
        STORAGE,
        "ResourceGroups",
        "VerifyResourceGroup",
        Rule::Secret,
    ),
    (
        STORAGE,
        "TaskInstances",
        "RegisterTaskInstance",
        Rule::Service,
    ),
    (STORAGE, "TaskInstances", "ReportTaskSuccess", Rule::Service),
    (STORAGE, "TaskInstances", "ReportTaskFailure", Rule::Service),
    (
        STORAGE,
        "TaskInstances",
        "RegisterTaskInstances",
        Rule::Service,
    ),
    (
        STORAGE,
        "TaskInstances",
        "ReportTaskOutcomes",
        Rule::Service,
    ),
    (STORAGE, "InboundQueues", "PollReadyTasks", Rule::Service),
    (STORAGE, "InboundQueues", "PollCommitTasks", Rule::Service),
    (STORAGE, "InboundQueues", "PollCleanupTasks", Rule::Service),
    (
        STORAGE,
        "ExecutionManagerLiveness",
        "RegisterExecutionManager",
        Rule::Service,
    ),
    (
        STORAGE,
        "ExecutionManagerLiveness",
        "Heartbeat",
        Rule::Service,
    ),
    (
        STORAGE,
        "SchedulerRegistration",
        "RegisterScheduler",
        Rule::Service,
    ),
    (
        STORAGE,
        "SchedulerRegistration",
        "GetSchedulers",
        Rule::Service,
    ),
    (STORAGE, "Session", "GetSession", Rule::Service),
    (SCHEDULER, "Scheduler", "NextTasks", Rule::Service),
    (SCHEDULER, "Scheduler", "Heartbeat", Rule::Service),
    (SCHEDULER, "Scheduler", "Shutdown", Rule::Service),
];

/// The rule of the RPC at gRPC path `path` (`/package.Service/Method`); `None` for a path
/// without a row.
#[must_use]
pub fn rule(path: &str) -> Option<Rule> {
    RULES.iter().find_map(|&(package, service, method, rule)| {
        let rest = path.strip_prefix(package)?;
        let rest = rest.strip_prefix(service)?.strip_prefix('/')?;
        (rest == method).then_some(rule)
    })
}

/// The gRPC path of a row of [`RULES`].
#[must_use]
pub fn path(row: &(&str, &str, &str, Rule)) -> String {
    format!("{}{}/{}", row.0, row.1, row.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_exactly_the_protocol() {
        let table: Vec<String> = RULES.iter().map(path).collect();
        for p in silk_proto::METHOD_PATHS {
            assert!(
                rule(p).is_some(),
                "RPC {p} has no row in auth::rules::RULES"
            );
        }
        for p in &table {
            assert!(
                silk_proto::METHOD_PATHS.contains(&p.as_str()),
                "row {p} names no RPC of the protocol"
            );
        }
        assert_eq!(
            table.len(),
            silk_proto::METHOD_PATHS.len(),
            "duplicate rows"
        );
        assert_eq!(rule("/silk.storage.v1.Session/GetSessionX"), None);
        assert_eq!(rule("/silk.storage.v1.JobOrchestration/"), None);
    }
}
