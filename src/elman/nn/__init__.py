"""elman.nn"""
