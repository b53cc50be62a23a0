# Minimal devenv: the toolchain and system packages the build needs, and the devnet stack as
# one process. Separate per-role processes and Prometheus come with the operators issue (#4).
{ pkgs, ... }:
{
  packages = [ pkgs.cmake pkgs.boost pkgs.protobuf pkgs.cargo-nextest ];
  languages.rust.enable = true;
  processes.devnet.exec = "cargo run --release -- devnet";
}
