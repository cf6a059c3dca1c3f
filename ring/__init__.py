"""ringkv.ring"""
