fn main() {
    eprintln!("huizhen-loadtests: scenarios land with issue #5; see loadtests/README.md");
}
