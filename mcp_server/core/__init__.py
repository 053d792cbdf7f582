"""What every process shares: settings, errors, input validation and the job lifecycle (`jobs`)."""
