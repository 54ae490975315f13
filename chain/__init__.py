"""EVM side: RPC pool, watcher, reorg handling, devnet. Filled in by the chain-watcher issue."""
