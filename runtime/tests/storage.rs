//! Storage service tests through the service layer, each run on SQLite and on MySQL/MariaDB
//! (`SILK_TEST_MYSQL_URL`; skipped with a notice when unset). Every case gets a fresh database
//! and a watchdog.

#[path = "storage/binary.rs"]
mod binary;
#[path = "storage/budget.rs"]
mod budget;
#[path = "storage/db_tls.rs"]
mod db_tls;
#[path = "storage/faults.rs"]
mod faults;
#[path = "storage/grpc.rs"]
mod grpc;
#[path = "storage/harness.rs"]
mod harness;
#[path = "storage/leases.rs"]
mod leases;
#[path = "storage/limits.rs"]
mod limits;
#[path = "storage/listing.rs"]
mod listing;
#[path = "storage/load.rs"]
mod load;
#[path = "storage/private_mariadb.rs"]
mod private_mariadb;
#[path = "storage/recovery.rs"]
mod recovery;
#[path = "storage/scenarios.rs"]
mod scenarios;
#[path = "support/mod.rs"]
mod support;
use support::certs;

macro_rules! on_both_databases {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = silk_runtime::storage::testing::fresh_sqlite(dir.path()).await.unwrap();
                    let run = crate::$module::$case(db);
                    tokio::time::timeout(std::time::Duration::from_secs(300), run).await.expect("watchdog");
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(url) = silk_runtime::storage::testing::mysql_url(stringify!($case)) else { return };
                    let db = silk_runtime::storage::testing::fresh_mysql(&url).await.unwrap();
                    let run = crate::$module::$case(db);
                    tokio::time::timeout(std::time::Duration::from_secs(300), run).await.expect("watchdog");
                }
            )*
        }
    };
}

on_both_databases!(
    scenarios::registration_concurrency,
    scenarios::diamond_exact_inputs,
    load::flat_10k_success,
    load::flat_10k_cancel,
    load::flat_cancel_race,
    load::always_fail,
    load::nn_success,
    load::nn_cancel,
    scenarios::bad_input_is_answered,
    scenarios::cancel_rules,
    scenarios::ended_jobs_stop_their_instances,
    scenarios::dead_em_and_soft_timeout,
    scenarios::retention,
    scenarios::replacing_scheduler_gets_ready_tasks_again,
    scenarios::lost_report_does_not_hang_the_job,
    leases::retried_registration_gets_the_same_instance,
    leases::poison_task_fails_its_job,
    leases::wall_clock_step_kills_no_em,
    leases::registration_retry_over_grpc,
    recovery::recover_ready,
    recovery::recover_running_without_rerun,
    recovery::recover_commit_ready,
    recovery::recover_cleanup_ready,
    recovery::restart_grants_ems_a_grace_period,
    grpc::grpc_job_end_to_end,
    grpc::grpc_bad_requests,
    listing::list_jobs_newest_first,
    listing::list_limit_rules,
    listing::open_group_by_name,
    listing::terminal_job_state_after_restart,
    budget::outputs_over_budget_are_read_back,
    budget::outputs_leave_memory_once_read,
    budget::large_job_outputs_are_paged,
);

/// Fault cases get a fixture (a database URL) rather than a connected database: they open
/// storage with their own settings and a second connection that takes locks.
macro_rules! with_fixture {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fx) = with_fixture!(@fixture $backend, $case) else { return };
                    let run = crate::faults::$case(fx);
                    tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("watchdog");
                }
            )*
        }
    };
    (@fixture sqlite, $case:ident) => { Some(crate::faults::sqlite()) };
    (@fixture mysql, $case:ident) => { crate::faults::mysql(stringify!($case)).await };
}

mod faults_on {
    with_fixture!(
        sqlite: lock_waits_on_every_write_path,
        a_report_whose_caller_gave_up_still_ends_its_job,
        refused_submit_is_unavailable,
        group_commit_outlasts_refusals,
        outputs_over_the_row_limit_fail_their_job,
        large_jobs_are_stored_in_parts_and_held_to_max_job_bytes,
        unfinished_jobs_share_the_job_memory_budget,
        jobs_stored_as_json_recover,
    );
    with_fixture!(
        mysql: lock_waits_on_every_write_path,
        a_report_whose_caller_gave_up_still_ends_its_job,
        refused_submit_is_unavailable,
        group_commit_outlasts_refusals,
        deadlocks_on_job_transitions,
        sweep_finishes_a_job_whose_finish_was_refused,
        retention_leaves_live_rows_alone,
        outputs_over_the_row_limit_fail_their_job,
        large_jobs_are_stored_in_parts_and_held_to_max_job_bytes,
        unfinished_jobs_share_the_job_memory_budget,
        jobs_stored_as_json_recover,
    );
}

/// Cases on a private MariaDB server of their own (skipped without `SILK_TEST_MYSQL_URL`).
mod private_server {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn startup_checks_max_allowed_packet() {
        let run = crate::limits::startup_checks_max_allowed_packet();
        tokio::time::timeout(std::time::Duration::from_secs(180), run)
            .await
            .expect("watchdog");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_completion_fails_only_its_job() {
        let run = crate::limits::refused_completion_fails_only_its_job();
        tokio::time::timeout(std::time::Duration::from_secs(180), run)
            .await
            .expect("watchdog");
    }
}
