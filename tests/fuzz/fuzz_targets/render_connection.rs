//! The render connection's JSON, both ways: what a device sends a host and what a host answers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parallax_core::device::{DeviceMessage, HostMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = DeviceMessage::parse(text) {
        match &message {
            DeviceMessage::Pose(pose) => {
                let _ = pose.problem(4096);
            }
            DeviceMessage::SetReview(review) => {
                let _ = review.problem();
            }
            _ => {}
        }
        // What was read is what is written: a host relaying it says the same.
        assert_eq!(DeviceMessage::parse(&message.to_json()).ok(), Some(message));
    }
    if let Ok(message) = HostMessage::parse(text) {
        assert_eq!(HostMessage::parse(&message.to_json()).ok(), Some(message));
    }
});
