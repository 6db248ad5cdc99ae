//! Decodes one protobuf request body (file argument or stdin) and prints it as JSON; for debugging.

use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut body = Vec::new();
    match std::env::args().nth(1) {
        Some(path) => body = std::fs::read(path)?,
        None => {
            std::io::stdin().read_to_end(&mut body)?;
        }
    }
    let json = edge_proto::decode(&body)?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
