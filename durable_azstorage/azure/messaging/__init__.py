"""Queues and what receives from them: control and activity receivers, the
deliveries this process caused, the wake-up signal and the poison store."""
