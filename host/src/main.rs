use std::process::ExitCode;

fn main() -> ExitCode {
    match scimlink::cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
