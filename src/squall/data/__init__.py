"""squall.data"""
