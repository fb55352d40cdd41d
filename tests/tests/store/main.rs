//! The store's contract, proved on both backends: every test below runs
//! once on a fresh SQLite file (`sqlite::…`) and once on a fresh
//! PostgreSQL database (`postgres::…`).
//!
//! Times are fixed, never `Utc::now()`: the site's night is 22:00 to
//! 07:00 at UTC+8, so `NIGHT` (16:00 UTC) is local midnight and `DAY`
//! (04:00 UTC) local noon.
//!
//! One file a section: `fixtures` for what they all share, then the
//! registry, ingest, deadlines, device health, incidents, concurrency and
//! volume, dispatch (with fixtures of its own), and the few tests outside
//! the pair. Every test that runs on both backends is named in the list
//! below, which makes its `sqlite::` and `postgres::` variants.

mod concurrency_and_volume;
mod deadlines;
mod device_health;
mod dispatch;
mod fixtures;
mod incidents;
mod ingest;
mod outside_the_pair;
mod registry;

use concurrency_and_volume::*;
use deadlines::*;
use device_health::*;
use dispatch::*;
use incidents::*;
use ingest::*;
use registry::*;

use eldercare_tests::on_both_backends;

on_both_backends!(
    elders_crud,
    devices_crud,
    stewards_crud,
    users_and_sessions,
    areas_and_scopes,
    ingest_is_idempotent,
    presses_join_until_the_elder_cancels,
    vitals_use_each_elders_limits,
    unknown_devices_are_kept_and_listed,
    bed_exit_at_night_without_return_raises,
    bed_return_before_due_unschedules,
    an_exit_and_its_return_in_one_batch_leave_no_deadline,
    a_rebound_device_speaks_for_its_new_elder,
    a_claimed_deadline_waits_for_its_lease,
    heartbeats_flush_and_read_back,
    offline_incident_clears_itself,
    supervisor_cancels,
    incidents_list_newest_first_with_filters,
    steward_sees_only_their_elders,
    concurrent_raises_make_one_incident,
    concurrent_redeliveries_store_one_event,
    concurrent_claims_never_share_a_deadline,
    a_big_batch_ingests,
    a_damaged_row_is_corrupt_not_a_panic,
    // dispatch
    an_opened_incident_is_due_for_dispatch,
    a_press_is_offered_in_the_transaction_that_opens_it,
    a_press_nobody_could_take_stays_due_for_the_engine,
    a_press_cancelled_in_its_own_batch_is_not_offered,
    first_offers_that_fail_fail_the_batch_and_change_nothing,
    a_turn_that_cannot_be_taken_waits_out_the_lease,
    two_incidents_racing_for_one_steward_never_share_them,
    two_hundred_incidents_fifty_stewards_never_double_booked,
    declines_and_expiries_escalate_then_a_steward_goes_and_resolves,
    a_critical_incident_offered_twice_goes_to_the_first_to_accept,
    a_long_wait_escalates_and_keeps_escalating,
    going_off_duty_withdraws_offers,
    supervisors_assign_and_reassign_by_hand,
    every_change_writes_its_notices,
    the_elders_cancel_and_a_clear_write_their_notices,
    the_outbox_is_claimed_leased_retried_and_finished,
    the_stream_reads_in_order_and_prunes,
    the_detail_shows_offers_candidates_and_deliveries,
    a_steward_sees_an_elder_only_while_offered,
);
