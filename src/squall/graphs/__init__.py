"""squall.graphs"""
