"""Who owns which control queue: the lease table, the balancer, the
partition manager and the ownership protocol."""
