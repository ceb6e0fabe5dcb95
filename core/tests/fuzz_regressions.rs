//! Every input that once broke a fuzz target of the wire decoders
//! (tests/fuzz/regressions/<target>/), run again through what that target checks.

use std::path::PathBuf;

use parallax_core::device::DeviceMessage;
use parallax_core::protocol::FrameHeader;

fn kept(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn device_messages_round_trip_or_are_refused_by_the_hosts_checks() {
    let kept = kept("render_connection");
    assert!(!kept.is_empty());
    for (input, bytes) in kept {
        let Ok(message) = DeviceMessage::parse(&String::from_utf8_lossy(&bytes)) else {
            continue;
        };
        let again = DeviceMessage::parse(&message.to_json()).ok();
        if again.as_ref() == Some(&message) {
            continue;
        }
        assert!(
            message.problem(u32::MAX).is_some(),
            "{input}: {message:?} neither round-trips nor is refused"
        );
    }
}

#[test]
fn frames_decode_to_what_encodes_back_or_are_refused() {
    let kept = kept("frame_header");
    assert!(!kept.is_empty());
    for (input, bytes) in kept {
        if let Ok((header, image)) = FrameHeader::decode(&bytes) {
            assert_eq!(header.encode_with(image), bytes, "{input}");
        }
    }
}
