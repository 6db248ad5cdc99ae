//! The crate's error type.

/// Errors of the Service proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Programming or reading nf_tables failed.
    #[error("nf_tables: {0}")]
    Nft(#[from] edge_nft::Error),
}
