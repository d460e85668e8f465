"""elman.train"""
