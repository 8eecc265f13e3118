//! Builds and runs `examples/tokio_cluster.rs`: a 3-node cluster with the KV service on tokio
//! tasks and channels; a put through one clerk is read back through another.

#[allow(dead_code)] // the example's `main` is not called here
#[path = "../examples/tokio_cluster.rs"]
mod example;

#[test]
fn a_cluster_on_tokio_serves_a_put_read_back_from_another_node() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    assert_eq!(rt.block_on(example::run()), Ok("vw".to_string()));
}
