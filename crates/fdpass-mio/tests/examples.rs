//! The examples, run as their users run them: real child processes, real
//! sockets, and each example's own checks. An example's `main` picks its
//! role from its arguments; here the test binary re-runs itself for the
//! child's role instead, and calls the same functions.

mod common;

#[path = "../examples/broker.rs"]
#[allow(dead_code)] // `main` is the example's; the test calls its parts.
mod broker;

use std::process::Stdio;

use common::{role, self_command};

#[test]
fn the_broker_answers_every_request_in_flight_each_matched_to_its_id() {
    if role().as_deref() == Some("broker-client") {
        broker::client().expect("the client's checks");
        return;
    }
    let mut command = self_command(
        "the_broker_answers_every_request_in_flight_each_matched_to_its_id",
        "broker-client",
    );
    // Nobody reads the client's output here: the harness's lines go nowhere,
    // a failure's reason (on stderr) shows with the test's.
    command.stdout(Stdio::null()).stderr(Stdio::inherit());
    // The client checks every answer against its request and fails
    // otherwise; the broker fails if the client did, and counts what it
    // answered (a child that ran no test would have asked nothing).
    let answered = broker::broker(command).expect("the broker");
    assert_eq!(answered, broker::REQUESTS);
}
