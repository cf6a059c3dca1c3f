"""ringkv.quorum"""
