//! The `torture` binary: everything happens in `torture::app`.

fn main() {
    std::process::exit(torture::app::main_with_args(std::env::args_os().collect()));
}
