//! Receive requests are served in the order they were made, and the stream
//! reports an error once.

mod common;

use std::io::Write;

use common::{pipe_with, seq_of, within};
use fdpass_smol::{Config, Error, Passer, ProtocolError, Wire};
use futures_util::StreamExt;

#[test]
fn joined_receives_get_descriptors_in_call_order() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let sender = async {
            a.send(pipe_with(1)).await.unwrap();
            a.send(pipe_with(2)).await.unwrap();
        };
        let (first, second, ()) = futures_util::join!(b.recv(), b.recv(), sender);
        assert_eq!(seq_of(first?.unwrap()), 1);
        assert_eq!(seq_of(second?.unwrap()), 2);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn receives_polled_in_reverse_order_are_served_in_call_order() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let first = b.recv();
        let second = b.recv();
        let third = b.recv();
        let sender = async {
            for seq in 1..=3 {
                a.send(pipe_with(seq)).await.unwrap();
            }
        };
        let (_, third, second, first) = futures_util::join!(sender, third, second, first);
        assert_eq!(seq_of(first?.unwrap()), 1);
        assert_eq!(seq_of(second?.unwrap()), 2);
        assert_eq!(seq_of(third?.unwrap()), 3);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn a_recv_many_asked_first_gets_the_first_descriptors() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        a.push_send_many((1..=4).map(pipe_with))?;
        a.flush().await?;
        let mut buf = Vec::new();
        let many = b.recv_many(&mut buf, 3);
        let one = b.recv();
        let (one, many) = futures_util::join!(one, many);
        assert_eq!(many?, 3);
        assert_eq!(seq_of(one?.unwrap()), 4);
        let seqs: Vec<u64> = buf.into_iter().map(seq_of).collect();
        assert_eq!(seqs, [1, 2, 3]);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn the_stream_yields_a_protocol_error_once_then_ends() {
    smol::block_on(within(60, async {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        // The stray byte is classic-wire input (bytes beyond descriptors).
        let config = Config::default().with_wire(Wire::Classic { batch: 128 });
        let mut b = Passer::from_std_with_config(ours, config)?;
        theirs.write_all(b"x").unwrap(); // one stray byte, no descriptor
        let mut errors = 0;
        let mut polls = 0;
        while let Some(item) = b.next().await {
            polls += 1;
            assert!(
                matches!(
                    item,
                    Err(Error::Protocol(
                        ProtocolError::BytesWithoutDescriptors { .. }
                    ))
                ),
                "{item:?}"
            );
            errors += 1;
            if polls == 1_000 {
                break;
            }
        }
        assert_eq!(errors, 1, "the error was yielded {errors} times");
        assert!(b.next().await.is_none());
        assert!(b.recv().await.is_err());
        Ok::<_, Error>(())
    }))
    .unwrap();
}
