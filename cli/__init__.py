"""ringkv.cli"""
