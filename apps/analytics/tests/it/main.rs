//! The analytics service's integration tests: one binary, real servers
//! from the harness (nats-server, and clickhouse-server for that store).

mod access;
mod behaviour;
mod helpers;
mod process;
mod rollups;
mod upgrade;

/// Runs every behaviour test against one store.
macro_rules! store_suite {
    ($store:ident) => {
        mod $store {
            use super::behaviour;
            use super::helpers::{Env, StoreKind};

            store_suite!(@tests StoreKind::$store;
                a_thousand_clicks_over_three_links_and_three_days_give_exact_stats,
                the_same_event_twice_counts_once,
                a_click_before_its_link_is_counted_and_later_attributed,
                poison_messages_land_in_the_dead_letter_subject_while_valid_traffic_flows,
                a_burst_of_poison_in_one_batch_is_dead_lettered_in_full,
                huge_and_header_breaking_poison_is_dead_lettered_and_ingestion_goes_on,
                a_panicking_consumer_task_is_restarted_and_the_others_never_stop,
                deleted_consumers_are_created_again_and_nothing_is_lost,
                updates_and_deletions_keep_the_copy_current,
                bad_parameters_get_problem_json_naming_the_field,
                replay_rebuilds_identical_stats,
                replay_refuses_to_lose_clicks_the_stream_no_longer_holds,
                the_index_and_reconciliation_read_one_page_at_a_time,
            );

            #[test]
            fn killing_analytics_mid_stream_loses_nothing_and_counts_nothing_twice() {
                let Some(env) = Env::start(StoreKind::$store) else { return };
                super::process::kill_and_restart_mid_stream(env);
            }

            #[test]
            fn a_replay_killed_midway_changes_nothing() {
                let Some(env) = Env::start(StoreKind::$store) else { return };
                super::process::a_replay_killed_midway_changes_nothing(env);
            }

            #[test]
            fn two_instances_on_one_store_lose_no_link_change() {
                let Some(env) = Env::start(StoreKind::$store) else { return };
                super::process::two_instances_on_one_store_lose_no_link_change(env);
            }
        }
    };
    (@tests $store:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(env) = Env::start($store) else { return };
                behaviour::$test(&env).await;
            }
        )*
    };
}

store_suite!(sqlite);
store_suite!(clickhouse);
