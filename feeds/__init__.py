"""ringkv.feeds"""
