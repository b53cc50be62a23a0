//! The Noise link over loopback: frames of every size arrive intact and in order however the
//! socket splits or joins them, a read cancelled by a timer loses nothing, and a closed peer
//! ends the reader with an error.

use std::time::Duration;
use sv2_io::{AuthorityKeypair, Frame, FrameReader, FrameSender};

/// A raw SV2 frame: extension 0x4242, message type `tag`, `len` payload bytes counting from
/// `tag`.
fn frame(tag: u8, len: usize) -> Frame {
    let mut bytes = vec![0x42, 0x42, tag];
    bytes.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    bytes.extend((0..len).map(|i| tag.wrapping_add(i as u8)));
    sv2_io::frame::from_bytes(bytes).expect("frame")
}

fn check(mut got: Frame, tag: u8, len: usize) {
    let (ext, t) = sv2_io::frame::kind(&got);
    assert_eq!((ext, t), (0x4242, tag));
    let payload = got.payload();
    assert_eq!(payload.len(), len, "frame {tag}");
    assert!(payload
        .iter()
        .enumerate()
        .all(|(i, b)| *b == tag.wrapping_add(i as u8)));
}

async fn pair() -> (FrameReader, FrameSender, FrameReader, FrameSender) {
    let keys = AuthorityKeypair::generate();
    let (listener, addr) = sv2_io::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server_keys = keys.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        sv2_io::accept(stream, &server_keys)
            .await
            .expect("handshake")
    });
    let (cr, cs) = sv2_io::connect(&addr.to_string(), &keys.public())
        .await
        .expect("connect");
    let (sr, ss) = server.await.expect("server task");
    (cr, cs, sr, ss)
}

/// Small frames in bursts (many per read), frames larger than the read buffer, and frames of
/// several Noise chunks, both directions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_every_size_arrive_in_order() {
    let (mut client_reader, client_sender, mut server_reader, server_sender) = pair().await;
    let sizes: Vec<usize> = (0..2_000)
        .map(|i| match i % 250 {
            0 => 200_000,
            1 => 5_000,
            2 => 65_519,
            _ => i % 120,
        })
        .collect();
    let send = |sender: FrameSender, sizes: Vec<usize>| async move {
        for (i, len) in sizes.into_iter().enumerate() {
            sender.send(frame(i as u8, len)).await.expect("send");
        }
    };
    let to_server = tokio::spawn(send(client_sender, sizes.clone()));
    let to_client = tokio::spawn(send(server_sender, sizes.clone()));
    for (i, len) in sizes.iter().enumerate() {
        check(server_reader.next().await.expect("frame"), i as u8, *len);
        check(client_reader.next().await.expect("frame"), i as u8, *len);
    }
    to_server.await.expect("sent");
    to_client.await.expect("sent");
}

/// A reader raced against a timer that often wins still gets every frame, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_read_loses_nothing() {
    let (_cr, client_sender, mut server_reader, _ss) = pair().await;
    tokio::spawn(async move {
        for i in 0..300usize {
            client_sender
                .send(frame(i as u8, (i * 37) % 9_000))
                .await
                .expect("send");
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let (mut got, mut cancelled) = (0usize, 0u32);
    while got < 300 {
        tokio::select! {
            f = server_reader.next() => {
                check(f.expect("frame"), got as u8, (got * 37) % 9_000);
                got += 1;
            }
            _ = tokio::time::sleep(Duration::from_micros(200)) => cancelled += 1,
        }
    }
    assert!(cancelled > 0, "the timer never cancelled a read");
}

/// A peer that goes away ends the reader with an error, not a hang.
#[tokio::test]
async fn a_closed_peer_ends_the_reader() {
    let (client_reader, client_sender, mut server_reader, _ss) = pair().await;
    client_sender.send(frame(1, 10)).await.expect("send");
    check(server_reader.next().await.expect("frame"), 1, 10);
    drop((client_reader, client_sender));
    let end = tokio::time::timeout(Duration::from_secs(5), server_reader.next())
        .await
        .expect("the reader noticed in time");
    assert!(end.is_err());
}
