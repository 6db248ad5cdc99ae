//! `edge-shim`: see [`edge_runtime::cli`].

fn main() -> std::process::ExitCode {
    edge_runtime::cli::main(std::env::args().collect())
}
