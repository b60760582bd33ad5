"""squall.config"""
