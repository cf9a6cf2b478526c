//! The scenarios, each a function generic over [`Adapter`](crate::Adapter)
//! that plays every role of its test (see [`Ctx::role`](crate::Ctx::role)).
//! Re-exported flat: the names are the test names
//! [`conformance_suite!`](crate::conformance_suite) generates.

mod batching;
mod bidirectional;
mod blocking_mode;
mod classic_peer;
mod concurrency;
mod fifo;
mod full_table;
mod native_peer;
mod never_fits;
mod nonblocking;
mod original_wire;
mod passing_passers;
mod peer_death;
mod shutdown;
mod volume;
mod wire_mismatch;

pub use batching::{batched_push_fills_messages, batched_receive_in_order};
pub use bidirectional::{bidirectional_path, bidirectional_socketpair};
pub use blocking_mode::{nonblocking_flag_survives_passing, socket_mode_survives_spawn};
pub use classic_peer::python_send_fds_and_recv_fds_speak_the_default_classic_wire;
pub use concurrency::nearly_full_table_with_concurrent_opens;
pub use fifo::fifo_at_once_and_after_delays;
pub use full_table::{full_table_peek, full_table_sentinel};
pub use native_peer::{
    messages_of_every_shape_arrive_whole_and_in_order,
    native_peer_echoes_every_message_whole_and_in_order,
    native_peer_from_the_spec_exchanges_messages_both_ways,
    native_peer_from_the_spec_passes_descriptors_both_ways,
};
pub use never_fits::{
    a_batch_that_comes_with_the_hello_and_can_never_fit_is_an_error_not_a_wait,
    a_batch_the_table_can_never_hold_is_an_error_not_a_wait,
    a_message_receive_reports_a_message_that_can_never_fit,
    a_message_the_table_can_never_hold_is_an_error_not_a_wait,
    a_receiver_that_announces_what_its_table_holds_gets_the_whole_batch,
    a_reservation_the_table_can_never_hold_is_an_error_not_a_wait,
};
pub use nonblocking::{recv_before_send_does_not_block, send_before_recv_does_not_block};
pub use original_wire::original_wire_peer;
pub use passing_passers::passing_passers;
pub use peer_death::{peer_exit_is_seen_without_leaks, peer_kill_is_seen_without_leaks};
pub use shutdown::{
    a_failed_passer_hands_back_what_it_never_sent, graceful_shutdown_delivers_everything_queued,
    pushes_past_the_high_water_mark_come_back_full, shutdown_past_its_deadline_keeps_the_unsent,
};
pub use volume::hundred_thousand_in_order;
pub use wire_mismatch::{
    a_classic_receiver_facing_a_native_sender_names_the_native_wire,
    a_native_peer_of_another_version_is_refused_by_name,
    a_native_receiver_facing_send_fds_names_the_classic_wire,
};
