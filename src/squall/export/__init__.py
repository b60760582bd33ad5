"""squall.export"""
