"""ringkv.gossip"""
