"""squall.evaluation"""
