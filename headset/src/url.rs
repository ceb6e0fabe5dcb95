//! A coordinator's address, as people type it, turned into a WebSocket URL.

/// `http://host:port` → `ws://host:port{path}` (and `https` → `wss`).
pub fn socket_url(server: &str, path: &str) -> String {
    let server = server.trim_end_matches('/');
    let base = if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_string()
    } else {
        format!("ws://{server}")
    };
    format!("{base}{path}")
}

#[cfg(test)]
mod tests {
    use super::socket_url;

    #[test]
    fn server_addresses_become_socket_urls() {
        assert_eq!(
            socket_url("http://127.0.0.1:3000", "/v1/x"),
            "ws://127.0.0.1:3000/v1/x"
        );
        assert_eq!(
            socket_url("https://p.example/", "/v1/x"),
            "wss://p.example/v1/x"
        );
        assert_eq!(
            socket_url("127.0.0.1:3000", "/v1/x"),
            "ws://127.0.0.1:3000/v1/x"
        );
    }
}
