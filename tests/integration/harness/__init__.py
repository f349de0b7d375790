"""End-to-end test harness for egressd: loopback origins, a DNS stub, the gateway
process and raw-socket client helpers.  Standard library only."""
