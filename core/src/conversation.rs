//! One WebSocket as a WCF-style session: an initiating `hello` must come first, `bye` terminates,
//! and nothing is accepted after the end.

use thiserror::Error;

use crate::protocol::ClientMessage;

/// Where a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Connected, nothing accepted yet: only `hello` is allowed.
    #[default]
    AwaitingHello,
    /// `hello` accepted; operations may flow.
    Open,
    /// `bye` accepted or the conversation was refused; nothing more is accepted.
    Ended,
}

/// What the connection handler should do after a message was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The conversation just opened: answer with a welcome.
    Opened,
    /// A message inside an open conversation: handle it.
    Operation,
    /// The client said goodbye: close the socket normally.
    Ended,
}

/// Why a message was refused. Each ends the conversation; `Display` is the close reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConversationError {
    #[error("the first message must be hello")]
    HelloRequired,
    #[error("hello was already received on this connection")]
    DuplicateHello,
    #[error("the conversation has ended")]
    Ended,
}

/// The rules of one conversation, independent of the socket that carries it.
#[derive(Debug, Default)]
pub struct Conversation {
    phase: Phase,
}

impl Conversation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Checks `message` against the conversation's rules and advances it.
    pub fn handle_message(&mut self, message: &ClientMessage) -> Result<Step, ConversationError> {
        let result = match (self.phase, message) {
            (Phase::Ended, _) => Err(ConversationError::Ended),
            (Phase::AwaitingHello, ClientMessage::Hello { .. }) => {
                self.phase = Phase::Open;
                Ok(Step::Opened)
            }
            (Phase::AwaitingHello, _) => Err(ConversationError::HelloRequired),
            (Phase::Open, ClientMessage::Hello { .. }) => Err(ConversationError::DuplicateHello),
            (Phase::Open, ClientMessage::Bye) => {
                self.phase = Phase::Ended;
                Ok(Step::Ended)
            }
        };
        if result.is_err() {
            self.phase = Phase::Ended;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> ClientMessage {
        ClientMessage::Hello {
            token: None,
            device: None,
        }
    }

    #[test]
    fn hello_opens_and_bye_ends() {
        let mut conversation = Conversation::new();
        assert_eq!(conversation.handle_message(&hello()), Ok(Step::Opened));
        assert_eq!(conversation.phase(), Phase::Open);
        assert_eq!(
            conversation.handle_message(&ClientMessage::Bye),
            Ok(Step::Ended)
        );
        assert_eq!(conversation.phase(), Phase::Ended);
    }

    #[test]
    fn anything_before_hello_is_refused_and_ends_the_conversation() {
        let mut conversation = Conversation::new();
        assert_eq!(
            conversation.handle_message(&ClientMessage::Bye),
            Err(ConversationError::HelloRequired)
        );
        // A refused conversation cannot be rescued by a late hello.
        assert_eq!(
            conversation.handle_message(&hello()),
            Err(ConversationError::Ended)
        );
    }

    #[test]
    fn a_second_hello_is_a_protocol_violation() {
        let mut conversation = Conversation::new();
        conversation.handle_message(&hello()).unwrap();
        assert_eq!(
            conversation.handle_message(&hello()),
            Err(ConversationError::DuplicateHello)
        );
        assert_eq!(conversation.phase(), Phase::Ended);
    }

    #[test]
    fn nothing_is_accepted_after_bye() {
        let mut conversation = Conversation::new();
        conversation.handle_message(&hello()).unwrap();
        conversation.handle_message(&ClientMessage::Bye).unwrap();
        assert_eq!(
            conversation.handle_message(&ClientMessage::Bye),
            Err(ConversationError::Ended)
        );
    }
}
