"""Client side: the producer library shared by the load generator, Snakepit hosts and users."""
