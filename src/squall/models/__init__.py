"""squall.models"""
