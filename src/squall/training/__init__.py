"""squall.training"""
